"""The shipped `tiny-block` model: SDAR format, loads offline through the block family, reads like Python."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from yipyap_jupyter.constants import TINY_BLOCK_MODEL_DIR, TINY_MODEL_DIR
from yipyap_jupyter.engine.families import KNOWN_MODELS, detect
from yipyap_jupyter.engine.families.sdar.network import SDARModel
from yipyap_jupyter.engine.model import DiffusionModel, SamplingOptions
from yipyap_jupyter.engine.registry import ModelRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from eval_continuations import evaluate


@pytest.fixture(scope="module")
def model() -> DiffusionModel:
    spec, path = ModelRegistry().resolve("tiny-block")
    return DiffusionModel.load(spec, path)


def test_ships_in_sdar_format_small_and_in_half_precision() -> None:
    config = json.loads((TINY_BLOCK_MODEL_DIR / "config.json").read_text())
    assert config["model_type"] == "sdar" and config["architectures"] == ["SDARForCausalLM"]
    assert detect(TINY_BLOCK_MODEL_DIR).name == "sdar"
    with safe_open(str(TINY_BLOCK_MODEL_DIR / "model.safetensors"), "pt") as weights:
        dtypes = {str(weights.get_slice(name).get_dtype()) for name in weights.keys()}
    assert dtypes == {"F16"}
    total = sum(p.stat().st_size for p in TINY_BLOCK_MODEL_DIR.iterdir() if p.is_file())
    assert total <= 25 * 10**6


def test_shares_tinys_tokenizer() -> None:
    assert (TINY_BLOCK_MODEL_DIR / "tokenizer.json").read_bytes() == (TINY_MODEL_DIR / "tokenizer.json").read_bytes()


def test_loads_through_the_block_family(model: DiffusionModel) -> None:
    assert model.spec is KNOWN_MODELS["tiny-block"] and model.spec.family == "sdar"
    assert isinstance(model.network, SDARModel)
    assert model.spec.capabilities == ("generate",)


def test_the_block_cache_changes_nothing(model: DiffusionModel) -> None:
    """The shipped defaults (the exact prefix cache) and a full recompute every step write the same text."""
    prompt = "class Stack:\n    def __init__(self):\n"
    cached = list(model.generate(prompt, SamplingOptions(seed=0)))[-1]
    recomputed = list(model.generate(prompt, SamplingOptions(seed=0, cache="none")))[-1]
    assert cached.text == recomputed.text and cached.text.strip()


def test_meets_its_model_card_targets() -> None:
    """The model card's figures on the 20 prompts of `scripts/eval_continuations.py`, at the shipped defaults."""
    result = evaluate("tiny-block", {}, seeds=(0, 1, 2))
    assert result["parse_rate"] >= 0.6
    assert result["distinct_line_share"] >= 0.7
    assert result["mean_characters"] >= 60
