"""The files of a checkpoint directory on disk, readable without importing torch.

`config.json` plus `model.safetensors`, or shards listed in
`model.safetensors.index.json`; the tokenizer files beside them. The registry
lists models with this module alone; `weights` uses it to load them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import ModelLoadingError, ModelUnavailableError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
EXPAND_TOKEN = "<|expand|>"


def read_config(directory: Path) -> dict[str, Any]:
    """The raw `config.json` of a checkpoint directory."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise ModelUnavailableError(f"no {CONFIG_FILE} in {directory}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadingError(f"unreadable {CONFIG_FILE} in {directory}: {exc}") from None
    if not isinstance(config, dict):
        raise ModelLoadingError(f"{CONFIG_FILE} in {directory} is not a JSON object")
    return config


def context_length(directory: Path) -> int | None:
    """The longest sequence the checkpoint's config allows (LLaDA, Dream and DiffusionGemma's text model name it
    differently)."""
    try:
        config = json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
        text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
        value = text.get("max_sequence_length") or text.get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def generation_ends(directory: Path) -> tuple[int, ...]:
    """The end tokens a checkpoint's `generation_config.json` names (`eos_token_id`, one or a list); () without one."""
    try:
        value = json.loads((Path(directory) / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError, AttributeError):
        return ()
    values = value if isinstance(value, list) else [value]
    return tuple(v for v in values if isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def has_expand_token(directory: Path) -> bool:
    """Whether the tokenizer beside the weights knows `<|expand|>` (DreamOn-style variable-length infilling)."""
    for name in ("tokenizer.json", "tokenizer_config.json", "added_tokens.json"):
        path = Path(directory) / name
        if path.is_file() and EXPAND_TOKEN in path.read_text(encoding="utf-8", errors="ignore"):
            return True
    return False


def checkpoint_files(directory: Path) -> tuple[list[Path], list[str]]:
    """The config and weight files a checkpoint directory needs: (present, missing names)."""
    needed = [directory / CONFIG_FILE]
    index = directory / INDEX_FILE
    if index.is_file():
        needed.append(index)
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (OSError, ValueError, KeyError, AttributeError):
            raise ModelLoadingError(f"unreadable {INDEX_FILE} in {directory}") from None
        needed += [directory / name for name in shards]
    else:
        needed.append(directory / WEIGHTS_FILE)
    present = [path for path in needed if path.is_file()]
    return present, [path.name for path in needed if not path.is_file()]


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files to read, all present (else ModelUnavailableError naming the missing ones)."""
    present, missing = checkpoint_files(directory)
    if missing:
        raise ModelUnavailableError(f"files missing from {directory}: {', '.join(missing)}")
    return [path for path in present if path.name.endswith(".safetensors")]
