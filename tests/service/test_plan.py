"""The plan: model defaults, then the settings the user set, then the request."""

from __future__ import annotations

import pytest

from yipyap_jupyter.engine.families import KNOWN_MODELS
from yipyap_jupyter.errors import ValidationError
from yipyap_jupyter.service.plan import make_plan
from yipyap_jupyter.service.schemas import GenerateRequest, InfillRequest
from yipyap_jupyter.settings import UserSettings

TINY, DREAM, LLADA = KNOWN_MODELS["tiny"], KNOWN_MODELS["dream-v0-instruct-7b"], KNOWN_MODELS["llada-8b-instruct"]


def test_model_defaults_apply_when_nothing_is_set() -> None:
    plan = make_plan(GenerateRequest(prompt="x"), TINY, UserSettings())
    d = TINY.defaults
    assert (plan.options.max_new_tokens, plan.options.steps, plan.options.block_length) == (
        d.max_new_tokens, d.steps, d.block_length)
    dream = make_plan(GenerateRequest(prompt="x"), DREAM, UserSettings())
    assert (dream.options.temperature, dream.options.top_k, dream.options.alg) == (0.2, 50, "entropy")


def test_settings_the_user_set_override_model_defaults_and_the_request_overrides_both() -> None:
    settings = UserSettings(max_new_tokens=16)
    assert make_plan(GenerateRequest(prompt="x"), TINY, settings).options.max_new_tokens == 16
    assert make_plan(GenerateRequest(prompt="x", max_new_tokens=8), TINY, settings).options.max_new_tokens == 8


def test_big_models_default_to_the_dual_cache_with_threshold() -> None:
    plan = make_plan(GenerateRequest(prompt="x"), LLADA, UserSettings())
    assert (plan.options.cache, plan.options.threshold) == ("dual", 0.9)
    assert make_plan(GenerateRequest(prompt="x"), TINY, UserSettings()).options.cache == "none"


@pytest.mark.parametrize("request_, message", [
    (GenerateRequest(prompt="x", alg="entropy"), "alg does not apply to llada models"),
    (GenerateRequest(prompt="x", top_k=5), "top_k does not apply to llada models"),
    (InfillRequest(prefix="a", suffix="b", variable=True, cache="dual"), "cache does not apply to variable-length"),
    (InfillRequest(prefix="a", suffix="b", variable=True, remasking="random"), "remasking does not apply"),
    (GenerateRequest(prompt="x", max_new_tokens=8, block_length=3), "block_length 3 must divide"),
    (GenerateRequest(prompt="x", max_new_tokens=8, block_length=4, steps=3), "multiple of the 2 block"),
])
def test_options_that_do_not_apply_are_refused_by_name(request_: GenerateRequest, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_plan(request_, TINY, UserSettings())


def test_llada_remasking_does_not_apply_to_dream() -> None:
    with pytest.raises(ValidationError, match="remasking does not apply to dream models"):
        make_plan(GenerateRequest(prompt="x", remasking="random"), DREAM, UserSettings())


def test_fix_punctuation_never_applies_to_a_code_model() -> None:
    settings = UserSettings(fix_punctuation=True)
    assert not make_plan(GenerateRequest(prompt="x"), TINY, settings).fix_punctuation
    assert not make_plan(GenerateRequest(prompt="x", fix_punctuation=True), TINY, settings).fix_punctuation
    assert make_plan(GenerateRequest(prompt="x"), LLADA, settings).fix_punctuation


def test_a_seed_is_chosen_when_none_is_given_and_reported() -> None:
    plan = make_plan(GenerateRequest(prompt="x"), TINY, UserSettings())
    assert isinstance(plan.options.seed, int)
    assert plan.effective_options("tiny")["seed"] == plan.options.seed
