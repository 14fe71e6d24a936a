"""Damaged checkpoints never replace the served model: each load is refused as model_loading.

Every damage is made to a copy of a tiny random checkpoint; the server (real, through
HTTP) must answer 500 `model_loading`, not retryable, and keep generating with the
model it had.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
import torch
from safetensors.torch import load_file, save_file
from server_helpers import as_json
from tokenizers import Tokenizer, models, pre_tokenizers
from tornado.httpclient import HTTPClientError


def edit_config(**changes: object) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        path = directory / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return damage


def garbage_in_weights(directory: Path) -> None:
    """4 KiB of noise in the middle of the tensor data (the file still parses)."""
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = random.Random(4).randbytes(4096)
    weights.write_bytes(bytes(data))


def nan_in_weights(directory: Path) -> None:
    weights = directory / "model.safetensors"
    state = load_file(str(weights))
    name = min(state)
    state[name][0] = float("nan")
    save_file(state, str(weights), metadata={"format": "pt"})


def without_tokenizer(directory: Path) -> None:
    (directory / "tokenizer.json").unlink()
    (directory / "tokenizer_config.json").unlink()


def bigger_tokenizer(directory: Path) -> None:
    """A tokenizer with far more tokens than the network's vocabulary (another model's)."""
    specials = ["<unk>", "<|startoftext|>", "<|endoftext|>", "<|mdm_mask|>", "<|expand|>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(300)])}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(directory / "tokenizer.json"))


def config_not_an_object(directory: Path) -> None:
    (directory / "config.json").write_text("[1, 2, 3]")


def truncated_weights(directory: Path) -> None:
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


DAMAGES: dict[str, Callable[[Path], None]] = {
    "mask id outside the vocabulary": edit_config(mask_token_id=5000),
    "mask id on an ordinary token": edit_config(mask_token_id=10),
    "eos id negative": edit_config(eos_token_id=-1),
    "a string for an integer": edit_config(d_model="32"),
    "a boolean for an integer": edit_config(n_layers=True),
    "a fraction for an integer": edit_config(n_layers=2.5),
    "zero heads": edit_config(n_heads=0),
    "heads that do not divide the width": edit_config(n_heads=5),
    "a negative epsilon": edit_config(rms_norm_eps=-1.0),
    "an infinite rope theta": edit_config(rope_theta=float("inf")),
    "config not an object": config_not_an_object,
    "4 KiB of garbage in the weights": garbage_in_weights,
    "a NaN in the weights": nan_in_weights,
    "truncated weights": truncated_weights,
    "no tokenizer": without_tokenizer,
    "another model's tokenizer": bigger_tokenizer,
}


def post(body: object) -> dict:
    return {"method": "POST", "body": json.dumps(body)}


QUICK = post({"prompt": "the cat", "max_new_tokens": 4, "steps": 2, "seed": 1})


async def test_damaged_checkpoints_are_refused_and_the_served_model_keeps_answering(
    jp_fetch, http_server_client, jp_base_url: str, jp_auth_header: dict, tiny_llada_dir: Path,
    other_llada_dir: Path, tmp_path: Path,
) -> None:
    expected = as_json(await jp_fetch("api", "diffusion", "generate", **QUICK))
    assert expected["model_used"] == str(tiny_llada_dir)
    for number, (name, damage) in enumerate(DAMAGES.items()):
        broken = tmp_path / f"broken-{number}"
        shutil.copytree(other_llada_dir, broken)
        damage(broken)
        url = f"{jp_base_url}api/diffusion/models/{quote(str(broken), safe='')}/load"
        with pytest.raises(HTTPClientError) as refused:
            await http_server_client.fetch(url, method="POST", body="{}", headers=jp_auth_header)
        body = json.loads(refused.value.response.body)
        assert (refused.value.code, body["error_type"], body["retryable"]) == (500, "model_loading", False), (
            name, body)
        if name in ("4 KiB of garbage in the weights", "a NaN in the weights"):
            assert "holds NaN or infinite values" in body["message"], (name, body)  # the finite-weights check
        assert as_json(await jp_fetch("api", "diffusion", "models", "current"))["id"] == str(tiny_llada_dir), name
        again = as_json(await jp_fetch("api", "diffusion", "generate", **QUICK))
        assert (again["model_used"], again["raw_text"]) == (str(tiny_llada_dir), expected["raw_text"]), name


def test_the_garbage_really_is_in_the_weights(other_llada_dir: Path, tmp_path: Path) -> None:
    """The noise lands inside a tensor and makes some of it NaN or infinite: the finite-weights check refuses it."""
    broken = tmp_path / "garbage"
    shutil.copytree(other_llada_dir, broken)
    garbage_in_weights(broken)
    damaged = load_file(str(broken / "model.safetensors"))
    clean = load_file(str(other_llada_dir / "model.safetensors"))
    changed = [name for name in clean if not torch.equal(damaged[name], clean[name])]
    assert changed and any(not torch.isfinite(damaged[name]).all() for name in changed), changed
