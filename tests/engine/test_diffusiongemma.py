"""DiffusionGemma: our stepwise program gives the tokens and decoder passes of transformers' seeded `generate`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from gemma_reference import seeded_generate
from transformers import DiffusionGemmaForBlockDiffusion, DiffusionGemmaGenerationConfig, EntropyBoundSamplerConfig

from yipyap_jupyter.engine.families.diffusiongemma import GENERATE_DEFAULTS
from yipyap_jupyter.engine.model import DiffusionModel, SamplingOptions
from yipyap_jupyter.engine.registry import ModelRegistry
from yipyap_jupyter.engine.runtime.batch import DecodingBatch, run_alone
from yipyap_jupyter.engine.samplers.base import SamplerStep
from yipyap_jupyter.errors import ModelLoadingError, ValidationError

PROMPT = "the cat sat on the mat"
#: Option sets that reach every branch: adaptive stopping, all steps, several canvases, an early end token.
RUNS: list[dict[str, Any]] = [
    dict(seed=0, max_new_tokens=20),
    dict(seed=3, max_new_tokens=30, stability_threshold=0, confidence_threshold=10.0),
    dict(seed=5, max_new_tokens=16, steps=4, t_min=0.5, t_max=1.5, entropy_bound=2.0),
    dict(seed=7, max_new_tokens=24, steps=9, stability_threshold=2, confidence_threshold=0.5),
]


@pytest.fixture(scope="module")
def gemma(tiny_gemma_dir: Path) -> DiffusionModel:
    spec, path = ModelRegistry().resolve(str(tiny_gemma_dir))
    return DiffusionModel.load(spec, path)


@pytest.fixture(scope="module")
def reference(tiny_gemma_dir: Path) -> Any:
    return DiffusionGemmaForBlockDiffusion.from_pretrained(str(tiny_gemma_dir)).eval()


def library_run(model: Any, prompt: list[int], options: dict[str, Any]) -> tuple[list[int], int]:
    """transformers' `generate` after `torch.manual_seed(seed)`: its tokens and its decoder passes."""
    names = {"steps": "max_denoising_steps"}
    kwargs = {names.get(k, k): v for k, v in options.items() if k not in ("seed", "entropy_bound")}
    if "entropy_bound" in options:
        kwargs["sampler_config"] = EntropyBoundSamplerConfig(entropy_bound=options["entropy_bound"])
    return seeded_generate(model, prompt, options["seed"], **kwargs)


def our_steps(gemma: DiffusionModel, options: dict[str, Any]) -> list[SamplerStep]:
    run = gemma.prepare_generate(PROMPT, SamplingOptions(chat=False, **options))
    return list(run_alone(gemma.fixed_length_network, run.program))


@pytest.mark.parametrize("options", RUNS, ids=[str(i) for i in range(len(RUNS))])
def test_tokens_and_passes_are_transformers_seeded_generates(gemma: DiffusionModel, reference: Any,
                                                            options: dict[str, Any]) -> None:
    steps = our_steps(gemma, options)
    prompt = gemma.tokenizer(PROMPT)["input_ids"]
    expected, passes = library_run(reference, prompt, options)
    assert steps[-1].canvas.tolist() == expected
    assert len(steps) == passes  # one step, one decoder pass


def test_the_global_random_state_is_never_used(gemma: DiffusionModel) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = our_steps(gemma, RUNS[0])[-1].canvas
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)  # another global state: the same request gives the same tokens
    assert torch.equal(our_steps(gemma, RUNS[0])[-1].canvas, first)


def test_concurrent_rows_are_their_solo_runs(gemma: DiffusionModel) -> None:
    alone = [[s.canvas.tolist() for s in our_steps(gemma, options)] for options in RUNS]
    batch = DecodingBatch(gemma.fixed_length_network)
    rows = [batch.add(gemma.prepare_generate(PROMPT, SamplingOptions(chat=False, **o)).program) for o in RUNS]
    while batch.rows:
        batch.step()
    together = [[s.canvas.tolist() for s in row.take() if isinstance(s, SamplerStep)] for row in rows]
    assert together == alone


def test_steps_show_the_draft_accepted_positions_settled_and_the_text_cut_at_the_end(gemma: DiffusionModel) -> None:
    decoded = list(gemma.generate(PROMPT, SamplingOptions(chat=False, **RUNS[3])))
    assert all(state in ("settled", "unsettled") for step in decoded for state in step.states)
    assert any("unsettled" in step.states for step in decoded)  # drafts are shown as such
    last = decoded[-1]
    assert set(last.states) == {"settled"} and last.progress == 1.0
    ids = gemma.ids
    tokens = list(last.tokens)
    end = next((i for i, t in enumerate(tokens) if t in ids.stops), len(tokens))
    assert last.text == gemma.tokenizer.decode(tokens[:end], skip_special_tokens=True)
    # the text a step calls settled is final: it only ever grows
    settled = [step.settled_text for step in decoded]
    assert all(later.startswith(earlier) for earlier, later in zip(settled, settled[1:]))


def test_defaults_come_from_the_checkpoints_generation_config(gemma: DiffusionModel) -> None:
    assert gemma.spec.defaults.steps == 6  # generation_config.json's max_denoising_steps
    steps = our_steps(gemma, dict(seed=1, max_new_tokens=8, stability_threshold=0, confidence_threshold=0.0))
    assert len(steps) == 6
    assert GENERATE_DEFAULTS.given() == {
        "max_new_tokens": 256, "steps": 48, "entropy_bound": 0.1, "t_min": 0.4, "t_max": 0.8,
        "stability_threshold": 1, "confidence_threshold": 0.005}
    library = DiffusionGemmaGenerationConfig._get_default_generation_params()
    assert (library["max_new_tokens"], library["max_denoising_steps"], library["sampler_config"].entropy_bound,
            library["t_min"], library["t_max"], library["stability_threshold"], library["confidence_threshold"]) == (
        256, 48, 0.1, 0.4, 0.8, 1, 0.005)


@pytest.mark.parametrize(("call", "message"), [
    (lambda m: m.prepare_infill("a", "b", SamplingOptions()), "does not support infill"),
    (lambda m: m.infill("a", "b", SamplingOptions(), variable=True), "does not support variable infill"),
    (lambda m: m.prepare_generate("a", SamplingOptions(block_length=8)), "block_length does not apply to diffusiongemma"),
    (lambda m: m.prepare_generate("a", SamplingOptions(temperature=0.5)), "temperature does not apply"),
])
def test_what_this_family_does_not_do_is_refused_by_name(gemma: DiffusionModel, call: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        result = call(gemma)
        if isinstance(result, Iterator):
            next(result)


def test_every_token_of_the_output_has_the_step_that_made_it_final(gemma: DiffusionModel) -> None:
    steps = our_steps(gemma, RUNS[3])
    start = steps[-1].span[0]
    final_at: dict[int, int] = {}
    for step in steps:
        for position in step.changed.tolist():
            final_at[position] = step.step
    assert set(final_at) == set(range(start, steps[-1].canvas.numel()))


def nan_in_a_weight(directory: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(directory / "model.safetensors"))
    state[min(state)].view(-1)[0] = float("nan")
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


def truncated_weights(directory: Path) -> None:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def a_missing_weight(directory: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(directory / "model.safetensors"))
    del state[sorted(state)[5]]
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})


def other_width(directory: Path) -> None:
    config = json.loads((directory / "config.json").read_text())
    config["text_config"]["hidden_size"] = 96
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("damage", [nan_in_a_weight, truncated_weights, a_missing_weight, other_width])
def test_a_damaged_checkpoint_is_refused_before_it_serves(tiny_gemma_dir: Path, tmp_path: Path, damage: Any) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_gemma_dir, broken)
    damage(broken)
    spec, path = ModelRegistry().resolve(str(broken))
    with pytest.raises(ModelLoadingError):
        DiffusionModel.load(spec, path)
