"""LLaDA 2.x and SDAR checkpoint directories through the engine and the service: recognised by model_type,
loaded by the official names, generating the official loops' tokens with the block cache and without."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from block_checkpoints import make_block_checkpoint
from block_reference import llada2_forward, llada20_generate, llada21_generate, sdar_forward, sdar_generate
from safetensors.torch import load_file

from yipyap_jupyter.engine.checkpoint.files import read_config
from yipyap_jupyter.engine.families import FAMILIES, KNOWN_MODELS, detect, family
from yipyap_jupyter.engine.model import DiffusionModel
from yipyap_jupyter.engine.options import SamplingOptions, resolve
from yipyap_jupyter.engine.runtime import DiffusionModelManager
from yipyap_jupyter.errors import ValidationError
from yipyap_jupyter.service.events import CompleteEvent, StepEvent
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore

PROMPT = "the cat sat on the mat and the dog ran"


@pytest.fixture(scope="module")
def llada2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_block_checkpoint("llada2", tmp_path_factory.mktemp("llada2"))


@pytest.fixture(scope="module")
def sdar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_block_checkpoint("sdar", tmp_path_factory.mktemp("sdar"))


def _load(directory: Path) -> DiffusionModel:
    return DiffusionModel.load(detect(directory).local_spec(str(directory), directory), directory)


def _official(directory: Path, forward, block_length: int, mask_id: int):  # type: ignore[no-untyped-def]
    """The official network restated, on the directory's weights; like a trained model, it never predicts the mask."""
    config = read_config(directory)
    weights = {name: t.double() for name, t in load_file(str(directory / "model.safetensors")).items()}

    def official(ids: torch.Tensor, start: int, past):  # type: ignore[no-untyped-def]
        logits, present = forward(weights, config, ids, start, past, block_length)
        logits[:, mask_id] = -torch.inf
        return logits, present

    return official


def _generated(model: DiffusionModel, options: SamplingOptions) -> tuple[list[int], list[int], int]:
    """(prompt ids, the generated ids of the last step, steps) of `PROMPT` through the model."""
    steps = list(model.generate(PROMPT, options))
    prompt = model.tokenizer(PROMPT)["input_ids"]
    return prompt, list(steps[-1].tokens), len(steps)


def test_each_block_checkpoint_is_recognised_by_its_family_only(llada2_dir: Path, sdar_dir: Path) -> None:
    for directory, name in ((llada2_dir, "llada2"), (sdar_dir, "sdar")):
        config = read_config(directory)
        assert [f.name for f in FAMILIES if f.recognises(config, directory)] == [name]


@pytest.mark.parametrize("cache", ["prefix", "none"])
def test_a_llada2_directory_generates_the_official_tokens(llada2_dir: Path, cache: str) -> None:
    model = _load(llada2_dir)
    assert model.spec.defaults.threshold == 0.95 and model.spec.defaults.block_length == 32
    options = SamplingOptions(max_new_tokens=20, block_length=8, steps=8, threshold=0.3, cache=cache, seed=0)
    prompt, ours, steps = _generated(model, options)
    expected, passes = llada20_generate(_official(llada2_dir, llada2_forward, 8, model.ids.mask_id), prompt, gen_length=20,
                                        block_length=8, steps=8, threshold=0.3, mask_id=model.ids.mask_id,
                                        eos_id=model.ids.eos)
    assert ours[:len(expected)] == expected and steps == len(passes)


def test_llada21_editing_through_the_model(llada2_dir: Path) -> None:
    model = _load(llada2_dir)
    options = SamplingOptions(max_new_tokens=20, block_length=8, threshold=0.3, editing_threshold=0.25,
                              max_post_steps=4, seed=0)
    prompt, ours, steps = _generated(model, options)
    expected, passes = llada21_generate(_official(llada2_dir, llada2_forward, 8, model.ids.mask_id), prompt, gen_length=20,
                                        block_length=8, threshold=0.3, editing_threshold=0.25, max_post_steps=4,
                                        mask_id=model.ids.mask_id, eos_id=model.ids.eos)
    assert ours[:len(expected)] == expected and steps == len(passes)


@pytest.mark.parametrize("remasking", ["low_confidence_dynamic", "sequential"])
def test_an_sdar_directory_generates_the_official_tokens(sdar_dir: Path, remasking: str) -> None:
    model = _load(sdar_dir)
    options = SamplingOptions(max_new_tokens=12, remasking=remasking, threshold=0.5, temperature=0.0, seed=0)
    prompt, ours, steps = _generated(model, options)
    official = _official(sdar_dir, sdar_forward, 4, model.ids.mask_id)
    x, passes, _ = sdar_generate(official, prompt, gen_length=12, block_length=4, steps=4, mask_id=model.ids.mask_id,
                                 remasking=remasking, threshold=0.5, stop_ids=tuple(sorted(model.ids.stops)))
    assert ours == x[len(prompt):len(prompt) + 12].tolist() and steps == len(passes)


@pytest.mark.parametrize("model_id, option, message", [
    ("llada2.0-mini", {"cache": "dual"}, "cache 'dual' does not apply to llada2"),
    ("llada2.0-mini", {"remasking": "sequential"}, "remasking does not apply to llada2"),
    ("llada2.1-mini", {"steps": 8}, "steps does not apply with LLaDA 2.1's token editing"),
    ("sdar-4b-chat", {"remasking": "random"}, "remasking 'random' does not apply to sdar"),
    ("sdar-4b-chat", {"editing_threshold": 0.5}, "editing_threshold does not apply to sdar"),
    ("sdar-4b-chat", {"eos_early_stop": True}, "eos_early_stop does not apply to sdar"),
    ("tiny", {"remasking": "sequential"}, "remasking 'sequential' does not apply to llada models"),
])
def test_options_a_family_does_not_read_are_refused_by_name(model_id: str, option: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        resolve(SamplingOptions(**option), KNOWN_MODELS[model_id], "generate")


def test_the_registry_carries_the_official_defaults() -> None:
    mini, mini21, sdar = (KNOWN_MODELS[i] for i in ("llada2.0-mini", "llada2.1-mini", "sdar-8b-chat"))
    assert (mini.defaults.block_length, mini.defaults.threshold, mini.defaults.cache) == (32, 0.95, "prefix")
    assert (mini21.defaults.threshold, mini21.defaults.editing_threshold, mini21.defaults.max_post_steps) == (0.7, 0.5, 16)
    assert (sdar.defaults.block_length, sdar.defaults.steps, sdar.defaults.remasking, sdar.defaults.threshold) == (
        4, 4, "low_confidence_dynamic", 0.85)
    assert {"llada2.0-flash", "sdar-1.7b-chat", "sdar-4b-chat", "trado-8b-instruct"} <= set(KNOWN_MODELS)
    assert all(KNOWN_MODELS[i].chat and KNOWN_MODELS[i].repo_id for i in ("llada2.0-flash", "trado-8b-instruct"))
    assert family("llada2").kind == family("sdar").kind == "block"
    assert mini.context_length == sdar.context_length == 32768 and mini.parameters and sdar.parameters


def test_a_block_checkpoint_generates_through_the_service(tmp_path: Path, llada2_dir: Path, sdar_dir: Path) -> None:
    manager = DiffusionModelManager()
    service = DiffusionLLMService(manager, SettingsStore(tmp_path / "s.json"), default_model=None)
    try:
        for directory, options in ((llada2_dir, {"eos_early_stop": True, "editing_threshold": 0.5}),
                                   (sdar_dir, {"remasking": "low_confidence_static", "cache": "none"})):
            events = list(service.generate_events({"prompt": PROMPT, "model": str(directory), "max_new_tokens": 10,
                                                   "seed": 3, **options}))
            end = events[-1]
            assert isinstance(end, CompleteEvent), end
            steps = [e for e in events if isinstance(e, StepEvent)]
            assert steps and "".join(s.text for s in steps) == end.raw_text
            assert all(end.options[name] == value for name, value in options.items())
            assert end.block_origin == -len(_load(directory).tokenizer(PROMPT)["input_ids"])  # blocks from the prompt
    finally:
        manager.unload()


def test_the_steps_say_where_blocks_begin_in_the_prompt(sdar_dir: Path) -> None:
    """The first block is shared with the prompt's tail: blocks are counted from the canvas start, and each
    step commits inside one block counted from there (what the decode-order view marks)."""
    model = _load(sdar_dir)
    steps = list(model.generate(PROMPT, SamplingOptions(max_new_tokens=12, block_length=4, steps=2, seed=0,
                                                         remasking="low_confidence_static")))
    origin = -len(model.tokenizer(PROMPT)["input_ids"])
    assert origin % 4 and {step.block_origin for step in steps} == {origin}  # a prompt that is not whole blocks
    assert all(len({(index - origin) // 4 for index in step.changed}) == 1 for step in steps)


def test_edited_tokens_are_marked_as_edited(llada2_dir: Path) -> None:
    model = _load(llada2_dir)
    steps = list(model.generate(PROMPT, SamplingOptions(max_new_tokens=20, block_length=8, threshold=0.3,
                                                         editing_threshold=0.25, seed=0)))
    assert any("edited" in step.states for step in steps)
    assert "masked" in steps[0].states and "masked" not in steps[-1].states


def test_the_last_step_settles_every_block(llada2_dir: Path) -> None:
    model = _load(llada2_dir)
    for options in (SamplingOptions(max_new_tokens=10, seed=3, editing_threshold=0.5, eos_early_stop=True),
                    SamplingOptions(max_new_tokens=12, block_length=8, seed=1, editing_threshold=0.25,
                                    max_post_steps=0)):
        last = list(model.generate(PROMPT, options))[-1]
        assert set(last.states) <= {"settled", "edited"}
        assert last.settled_text == last.text


def test_yes_no_options_read_on_and_off_on_the_command_line() -> None:
    from IPython.core.error import UsageError

    from yipyap_jupyter.kernel.arguments import sampler_values
    from yipyap_jupyter.kernel.magics import cell_parser

    args = cell_parser().parse_args("--eos-early-stop off --editing-threshold 0.5 --max-post-steps 0".split())
    assert sampler_values(args) == {"eos_early_stop": False, "editing_threshold": 0.5, "max_post_steps": 0}
    assert sampler_values(cell_parser().parse_args(["--eos-early-stop", "on"])) == {"eos_early_stop": True}
    with pytest.raises(UsageError, match="expected on or off, not 'maybe'"):
        cell_parser().parse_args(["--eos-early-stop", "maybe"])


def test_a_tokenizer_that_names_its_mask_otherwise_still_gives_the_mask(tmp_path: Path) -> None:
    from yipyap_jupyter.engine.specs import FamilyTokens

    directory = make_block_checkpoint("llada2", tmp_path, tokens=FamilyTokens(mask="<|mdm_mask|>", eos="<|endoftext|>"))
    model = DiffusionModel.load(KNOWN_MODELS["llada2.0-mini"], directory)  # the registry spec says <|mask|>
    assert model.ids.mask == model.tokenizer.convert_tokens_to_ids("<|mdm_mask|>")
    assert _load(directory).ids.mask == model.ids.mask  # a local directory reads the name from tokenizer_config.json


def test_the_command_line_generates_with_a_block_checkpoint(tmp_path: Path, sdar_dir: Path) -> None:
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
           "YIPYAP_SETTINGS_PATH": str(tmp_path / "settings.json"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "yipyap_jupyter", PROMPT, "--model", str(sdar_dir),
                           "--max-new-tokens", "8", "--remasking", "sequential", "--seed", "1"],
                          env=env, text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    model = _load(sdar_dir)
    expected = list(model.generate(PROMPT, SamplingOptions(max_new_tokens=8, remasking="sequential", seed=1)))[-1]
    assert done.stdout.strip() == expected.text.strip()
