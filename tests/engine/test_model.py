"""DiffusionModel: requests become sampler runs and decoded steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from checkpoints import make_dream_checkpoint, make_llada_checkpoint

from yipyap_jupyter.constants import MASK_GLYPH
from yipyap_jupyter.engine.families import KNOWN_MODELS, family
from yipyap_jupyter.engine.model import DiffusionModel, SamplingOptions
from yipyap_jupyter.errors import ValidationError


@pytest.fixture(scope="module")
def llada(tmp_path_factory: pytest.TempPathFactory) -> DiffusionModel:
    directory = make_llada_checkpoint(tmp_path_factory.mktemp("llada") / "ckpt")
    return DiffusionModel.load(family("llada").local_spec("local", directory), directory)


@pytest.fixture(scope="module")
def dream(tmp_path_factory: pytest.TempPathFactory) -> DiffusionModel:
    directory = make_dream_checkpoint(tmp_path_factory.mktemp("dream") / "ckpt")
    return DiffusionModel.load(family("dream").local_spec("local-dream", directory), directory)


def test_generate_runs_the_requested_steps_and_ends_unmasked(llada: DiffusionModel) -> None:
    steps = list(llada.generate("once upon a time", SamplingOptions(max_new_tokens=8, steps=4, seed=0)))
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert steps[0].canvas.count(MASK_GLYPH) == 6  # 8 masks, two committed per step
    assert MASK_GLYPH not in steps[-1].canvas
    assert steps[-1].progress == 1.0
    assert sum(len(s.changed) for s in steps) == 8


def test_settled_text_grows_as_a_prefix_of_the_final_text(llada: DiffusionModel) -> None:
    steps = list(llada.generate("the cat", SamplingOptions(max_new_tokens=8, steps=8, seed=3)))
    final = steps[-1].text
    for s in steps:
        assert final.startswith(s.settled_text)
    assert steps[-1].settled_text == final


def test_same_seed_same_output_at_temperature(llada: DiffusionModel) -> None:
    options = SamplingOptions(max_new_tokens=8, steps=4, temperature=1.0, seed=7)
    first = [s.tokens for s in llada.generate("the dog", options)]
    second = [s.tokens for s in llada.generate("the dog", options)]
    assert first == second


def test_defaults_fill_blocks_and_steps(llada: DiffusionModel) -> None:
    # 40 tokens do not fit LLaDA's default block of 32: one block of 40, one token per step
    steps = list(llada.generate("x", SamplingOptions(max_new_tokens=40, seed=0)))
    assert len(steps) == 40
    assert all(len(s.changed) == 1 for s in steps)
    # 64 tokens: two default blocks, filled left to right
    steps = list(llada.generate("x", SamplingOptions(max_new_tokens=64, steps=8, seed=0)))
    assert all(i < 32 for s in steps[:4] for i in s.changed)
    assert all(i >= 32 for s in steps[4:] for i in s.changed)


def test_fixed_infill_fills_exactly_length_tokens(llada: DiffusionModel) -> None:
    steps = list(llada.infill("def x", "return y", SamplingOptions(steps=2, seed=0), length=4))
    assert len(steps) == 2
    assert all(len(s.tokens) == 4 for s in steps)


def test_variable_infill_needs_the_capability(dream: DiffusionModel, llada: DiffusionModel) -> None:
    with pytest.raises(ValidationError, match="variable infill"):
        dream.infill("a", "b", SamplingOptions(), variable=True)
    steps = list(llada.infill("def x", "return y", SamplingOptions(max_new_tokens=8, seed=0), variable=True))
    assert steps and MASK_GLYPH not in steps[-1].canvas


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (SamplingOptions(max_new_tokens=8, block_length=3), "block_length"),
        (SamplingOptions(max_new_tokens=8, steps=9), "steps"),
        (SamplingOptions(temperature=-1.0), "temperature"),
        (SamplingOptions(remasking="entropy"), "remasking"),
    ],
)
def test_bad_options_are_validation_errors(llada: DiffusionModel, options: SamplingOptions, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        list(llada.generate("x", options))


def test_dream_family_uses_dream_algorithms(dream: DiffusionModel) -> None:
    steps = list(dream.generate("the cat", SamplingOptions(max_new_tokens=6, steps=3, alg="maskgit_plus", seed=0)))
    assert len(steps) == 3 and MASK_GLYPH not in steps[-1].canvas
    with pytest.raises(ValidationError, match="remasking does not apply to dream models"):
        list(dream.generate("x", SamplingOptions(remasking="low_confidence")))


@pytest.mark.parametrize("option", ["cache", "threshold", "remasking", "cfg_scale", "steps", "block_length"])
def test_options_that_variable_infill_does_not_read_are_refused_by_name(llada: DiffusionModel, option: str) -> None:
    value = {"cache": "dual", "threshold": 0.9, "remasking": "random", "cfg_scale": 1.0, "steps": 4, "block_length": 4}
    with pytest.raises(ValidationError, match=f"{option} does not apply to variable-length infilling"):
        llada.infill("def x", "return y", SamplingOptions(**{option: value[option]}), variable=True)


def test_dream_options_do_not_apply_to_llada(llada: DiffusionModel) -> None:
    with pytest.raises(ValidationError, match="alg does not apply to llada models"):
        llada.generate("x", SamplingOptions(alg="entropy"))


def test_a_canvas_longer_than_the_context_is_refused(llada: DiffusionModel) -> None:
    assert llada.context_length is not None
    with pytest.raises(ValidationError, match=f"context length of .* \\({llada.context_length} tokens\\)"):
        llada.generate("x", SamplingOptions(max_new_tokens=llada.context_length, steps=1,
                                            block_length=llada.context_length))


def test_variable_infill_progress_ends_at_one_and_never_overstates_the_total(llada: DiffusionModel) -> None:
    steps = list(llada.infill("def x", "return y", SamplingOptions(max_new_tokens=8, seed=0), variable=True))
    assert steps[-1].progress == 1.0 and steps[-1].total_steps == steps[-1].step
    assert all(s.total_steps <= len(steps) for s in steps)


def test_dreamon_spec_cannot_generate() -> None:
    assert "generate" not in KNOWN_MODELS["dreamon-v0-7b"].capabilities
    assert Path(KNOWN_MODELS["tiny"].local_dir or "").name == "tiny"


@pytest.mark.parametrize("cache", ["none", "prefix", "dual"])
def test_threshold_and_cache_reach_both_families(llada: DiffusionModel, dream: DiffusionModel, cache: str) -> None:
    for model in (llada, dream):
        steps = list(model.generate("the cat", SamplingOptions(max_new_tokens=8, steps=8, block_length=4,
                                                               threshold=0.5, cache=cache, seed=0, temperature=0.0)))
        assert 1 <= len(steps) <= 8 and MASK_GLYPH not in steps[-1].canvas
        assert sum(len(s.changed) for s in steps) == 8
        assert steps[-1].total_steps == len(steps) and steps[-1].progress == 1.0


def test_fixed_length_sampling_never_emits_expand_or_start_tokens(llada: DiffusionModel) -> None:
    expand, bos = llada.ids.expand, llada.ids.bos

    def prefer_them(module: torch.nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        logits[..., expand] += 1e4
        logits[..., bos] += 1e4
        return logits

    hook = llada.network.register_forward_hook(prefer_them)
    try:
        steps = list(llada.generate("the cat", SamplingOptions(max_new_tokens=8, steps=4, seed=0)))
    finally:
        hook.remove()
    assert expand not in steps[-1].tokens and bos not in steps[-1].tokens


def test_classifier_free_guidance_stays_finite_with_banned_tokens(llada: DiffusionModel) -> None:
    steps = list(llada.generate("the cat", SamplingOptions(max_new_tokens=8, steps=4, cfg_scale=4.0, seed=0)))
    assert all(c == c for s in steps for c in s.confidences)  # no NaN
    assert llada.ids.mask not in steps[-1].tokens
