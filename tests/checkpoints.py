"""Tiny random checkpoints in the official layouts, and a fake Hugging Face cache, for tests.

`serve_as_hub` answers the few hub routes `snapshot_download` uses, from a local
directory, so downloads are tested without reaching a hub.

Every builder writes real files that the engine reads the way it reads the
official checkpoints: `config.json` + `model.safetensors` (through
`checkpoint.save_checkpoint`) and a `tokenizer.json` that `AutoTokenizer` loads.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, pre_tokenizers

from yipyap_jupyter.engine.checkpoint.weights import save_checkpoint
from yipyap_jupyter.engine.families.diffusiongemma import GEMMA_TOKENS
from yipyap_jupyter.engine.families.dream import DREAM_TOKENS
from yipyap_jupyter.engine.families.dream.config import DreamConfig
from yipyap_jupyter.engine.families.dream.network import DreamModel
from yipyap_jupyter.engine.families.dreamon import DREAMON_TOKENS
from yipyap_jupyter.engine.families.llada import TINY_TOKENS
from yipyap_jupyter.engine.families.llada.config import LLaDAConfig
from yipyap_jupyter.engine.families.llada.network import LLaDAModel
from yipyap_jupyter.engine.specs import FamilyTokens

WORDS = (
    "the a of to in and is it for def return if else while import class self print None True False "
    "x y n i value list dict name data result one two three once upon time there was cat dog ran sat on mat"
).split()


def save_tokenizer(directory: Path, tokens: FamilyTokens, size: int | None = None) -> dict[str, int]:
    """A word-level tokenizer over `WORDS` plus the family's special tokens; returns the vocabulary.

    With `size`, made-up words (`w<id>`) fill the vocabulary up to `size` entries, so a network of a
    real model's vocabulary decodes every id it predicts.
    """
    specials = ["<unk>"] + [t for t in (tokens.bos, tokens.eos, tokens.eot, tokens.mask, tokens.expand) if t]
    words = specials + list(WORDS)
    words += [f"w{i}" for i in range(len(words), size or 0)]
    vocab = {token: i for i, token in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens(specials)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "<unk>",
        "eos_token": tokens.eos,
        "mask_token": tokens.mask,
        "model_max_length": 512,
    }
    if tokens.bos:
        config["bos_token"] = tokens.bos
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return vocab


def make_llada_checkpoint(
    directory: Path, *, seed: int = 0, tokens: FamilyTokens = TINY_TOKENS, n_layers: int = 2, d_model: int = 32,
    vocab_size: int | None = None, device: str = "cpu", dtype: torch.dtype | None = None, **shape: Any,
) -> Path:
    """A random LLaDA-architecture checkpoint with the tiny model's special tokens (expand included).

    `vocab_size` fills the tokenizer up to that size; `shape` overrides other `LLaDAConfig` fields
    (`n_heads`, `mlp_hidden_size`, `max_sequence_length`, ...). The weights are drawn on `device`
    (fast for a large network on a GPU) and written in `dtype` (default float32).
    """
    vocab = save_tokenizer(directory, tokens, vocab_size)
    fields: dict[str, Any] = dict(n_heads=4, mlp_hidden_size=2 * d_model, max_sequence_length=512)
    config = LLaDAConfig(
        d_model=d_model,
        n_layers=n_layers,
        vocab_size=len(vocab),
        mask_token_id=vocab[tokens.mask],
        eos_token_id=vocab[tokens.eos],
        pad_token_id=vocab[tokens.eos],
        **{**fields, **shape},
    )
    torch.manual_seed(seed)
    with torch.device(device):
        network = LLaDAModel(config)
    return save_checkpoint(network, directory, dtype=dtype)


def make_dream_checkpoint(
    directory: Path, *, seed: int = 0, dreamon: bool = False, vocab_size: int | None = None, device: str = "cpu",
    dtype: torch.dtype | None = None, tokens: FamilyTokens | None = None, **shape: Any,
) -> Path:
    """A random Dream-architecture checkpoint; with `dreamon`, its tokenizer has `<|expand|>` (DreamOn).

    `tokens`: the special tokens of a Dream-shaped model of its own (DiffuCoder's), instead of Dream's.
    `vocab_size`, `device`, `dtype` and `shape` (other `DreamConfig` fields) as for `make_llada_checkpoint`.
    """
    tokens = tokens or (DREAMON_TOKENS if dreamon else DREAM_TOKENS)
    vocab = save_tokenizer(directory, tokens, vocab_size)
    fields: dict[str, Any] = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, max_position_embeddings=512)
    config = DreamConfig(
        vocab_size=len(vocab),
        mask_token_id=vocab[tokens.mask],
        pad_token_id=vocab[tokens.eos],
        bos_token_id=vocab[tokens.bos],
        eos_token_id=vocab[tokens.eos],
        **{**fields, **shape},
    )
    torch.manual_seed(seed)
    with torch.device(device):
        network = DreamModel(config)
    return save_checkpoint(network, directory, dtype=dtype)


def make_diffusiongemma_checkpoint(
    directory: Path, *, seed: int = 0, canvas_length: int = 8, hidden_size: int = 64, layers: int = 3,
    generation: dict[str, object] | None = None,
) -> Path:
    """A random DiffusionGemma checkpoint as transformers' `save_pretrained` writes it (about 0.6M parameters).

    Built with the library's own config class; `generation` goes into its `generation_config.json`
    (the end token is the tokenizer's `<eos>` unless it says otherwise).
    """
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion

    vocab = save_tokenizer(directory, GEMMA_TOKENS)
    types = ["sliding_attention"] * (layers - 1) + ["full_attention"]
    config = DiffusionGemmaConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                         global_head_dim=32, layer_types=types, sliding_window=16, num_experts=4, top_k_experts=2,
                         moe_intermediate_size=hidden_size // 2, max_position_embeddings=512, pad_token_id=0,
                         eos_token_id=vocab[GEMMA_TOKENS.eos], bos_token_id=0),
        vision_config=dict(model_type="gemma4_vision", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=2, head_dim=16),
        canvas_length=canvas_length,
    )
    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(config).eval()
    settings = {"eos_token_id": [vocab[GEMMA_TOKENS.eos]], "pad_token_id": 0, **(generation or {})}
    for name, value in settings.items():
        setattr(model.generation_config, name, value)
    model.save_pretrained(str(directory))
    return directory


def shard_checkpoint(directory: Path, shards: int = 2) -> Path:
    """Split `model.safetensors` into shards listed in `model.safetensors.index.json`, as large checkpoints are."""
    state = load_file(str(directory / "model.safetensors"))
    names = sorted(state)
    weight_map: dict[str, str] = {}
    for index in range(shards):
        file_name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: state[name] for name in names[index::shards]}
        save_file(part, str(directory / file_name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file_name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index_json = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index_json, indent=2), encoding="utf-8")
    (directory / "model.safetensors").unlink()
    return directory


def add_to_hub_cache(
    cache_dir: Path, repo_id: str, source: Path, revision: str = "0" * 40, skip: tuple[str, ...] = ()
) -> Path:
    """Place `source`'s files in a Hugging Face cache the way the hub does; returns the snapshot dir.

    Layout: `models--org--name/blobs/<sha256>`, `snapshots/<revision>/<file>` symlinked to the blob,
    and `refs/main` holding the revision. Files named in `skip` are left out (a partial download).
    """
    repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / revision
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.name in skip or not path.is_file():
            continue
        blob = repo_dir / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision, encoding="utf-8")
    return snapshot


@contextmanager
def serve_as_hub(repo_id: str, source: Path, revision: str = "1" * 40) -> Iterator[str]:
    """Serve `source`'s files as hub repository `repo_id` on localhost; yields the endpoint URL (HF_ENDPOINT).

    Routes: repo info, the recursive file tree, and `resolve` (HEAD + GET). Anything else is a
    404 that the hub client reads as "repository not found".
    """
    files = {path.name: path.read_bytes() for path in sorted(source.iterdir()) if path.is_file()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, body: bytes, headers: dict[str, str], status: int = 200) -> None:
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            resolve = f"/{repo_id}/resolve/{revision}/"
            if path == f"/api/models/{repo_id}/revision/main":
                info = {"id": repo_id, "sha": revision, "siblings": [{"rfilename": name} for name in files]}
                self._answer(json.dumps(info).encode(), {"Content-Type": "application/json"})
            elif path == f"/api/models/{repo_id}/tree/{revision}":
                tree = [
                    {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in files.items()
                ]
                self._answer(json.dumps(tree).encode(), {"Content-Type": "application/json"})
            elif path.startswith(resolve) and path[len(resolve) :] in files:
                data = files[path[len(resolve) :]]
                self._answer(data, {"X-Repo-Commit": revision, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'})
            else:
                self._answer(b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}, status=404)

        do_HEAD = do_GET

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
