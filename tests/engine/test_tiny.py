"""The shipped `tiny` model: loads offline, generates, infills (fixed and variable length), round-trips text."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest
import torch
from alone import llada_sample

from yipyap_jupyter.constants import MASK_GLYPH, TINY_MODEL_DIR
from yipyap_jupyter.engine.checkpoint.weights import load_network
from yipyap_jupyter.engine.families import detect
from yipyap_jupyter.engine.families.dreamon.sampler import variable_infill
from yipyap_jupyter.engine.families.llada.network import LLaDAModel

# scripts/tiny_data.py puts `pprint` in the held-out split (a hash of the module name), so
# the tokenizer never saw this file while it was trained.
HELD_OUT_MODULE = Path(sysconfig.get_paths()["stdlib"]) / "pprint.py"


@pytest.fixture(scope="module")
def tokenizer():
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = AutoTokenizer.from_pretrained(str(TINY_MODEL_DIR))
    assert isinstance(tok, PreTrainedTokenizerFast)
    return tok


@pytest.fixture(scope="module")
def network() -> LLaDAModel:
    return load_network(TINY_MODEL_DIR, dtype=torch.float32)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _last(steps):
    *_, step = steps
    return step


def test_loads_offline_as_llada_with_its_special_tokens(network: LLaDAModel, tokenizer) -> None:
    assert detect(TINY_MODEL_DIR).name == "llada"
    assert isinstance(network, LLaDAModel)
    assert network.config.mask_token_id == tokenizer.mask_token_id == tokenizer.convert_tokens_to_ids("<|mdm_mask|>")
    assert network.config.eos_token_id == tokenizer.eos_token_id == tokenizer.pad_token_id
    assert tokenizer.bos_token == "<|startoftext|>"
    assert tokenizer.convert_tokens_to_ids("<|expand|>") not in (tokenizer.unk_token_id, None)
    assert network.config.vocab_size == len(tokenizer)


def test_shipped_files_stay_small() -> None:
    total = sum(p.stat().st_size for p in Path(TINY_MODEL_DIR).iterdir() if p.is_file())
    assert total < 25 * 2**20


def test_tokenizer_round_trips_held_out_source(tokenizer) -> None:
    text = HELD_OUT_MODULE.read_text(encoding="utf-8")
    assert tokenizer.decode(_ids(tokenizer, text)) == text


def test_generation_returns_decodable_text() -> None:
    from yipyap_jupyter.engine.families import KNOWN_MODELS
    from yipyap_jupyter.engine.model import DiffusionModel, SamplingOptions

    model = DiffusionModel.load(KNOWN_MODELS["tiny"], TINY_MODEL_DIR)
    options = SamplingOptions(max_new_tokens=48, steps=48, block_length=16, seed=0)  # notebook 01's cell
    last = list(model.generate("class Stack:", options))[-1]
    assert MASK_GLYPH not in last.canvas
    assert last.text.strip()
    assert model.tokenizer.decode(model.tokenizer(last.text, add_special_tokens=False)["input_ids"]) == last.text


def test_fixed_length_infill_keeps_prefix_and_suffix(network: LLaDAModel, tokenizer) -> None:
    prefix = [tokenizer.bos_token_id, *_ids(tokenizer, "def area(width, height):\n")]
    suffix = _ids(tokenizer, "\n    return result\n")
    canvas = torch.tensor([[*prefix, *[tokenizer.mask_token_id] * 8, *suffix]])
    step = _last(llada_sample(network, canvas, mask_id=tokenizer.mask_token_id, steps=8, block_length=8))
    out = step.canvas.tolist()
    assert out[: len(prefix)] == prefix
    assert out[-len(suffix) :] == suffix
    assert tokenizer.mask_token_id not in out


def test_variable_length_infill_changes_the_middle_length(network: LLaDAModel, tokenizer) -> None:
    prefix = _ids(tokenizer, "def add(a, b):\n")
    suffix = _ids(tokenizer, "\n\n\ndef sub(a, b):\n    return a - b\n")
    n_masks = 16  # far more room than `    return a + b` needs
    canvas = torch.tensor(
        [[tokenizer.bos_token_id, *prefix, *[tokenizer.mask_token_id] * n_masks, *suffix, tokenizer.eos_token_id]]
    )
    step = _last(
        variable_infill(
            network, canvas, mask_id=tokenizer.mask_token_id, delete_id=tokenizer.eos_token_id,
            expand_id=tokenizer.convert_tokens_to_ids("<|expand|>"), max_new_tokens=32, shift_logits=False,
            generator=torch.Generator().manual_seed(0),
        )
    )
    start, end = step.span
    out = step.canvas.tolist()
    assert end - start != n_masks
    assert out[1 : 1 + len(prefix)] == prefix
    assert out[end:-1] == suffix
    assert tokenizer.mask_token_id not in out
