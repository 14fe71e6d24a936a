"""Read and write checkpoints in the official layouts of our own networks (LLaDA, Dream, LLaDA 2.x, SDAR).

A checkpoint directory holds `config.json` and either `model.safetensors` or
shards listed in `model.safetensors.index.json`. The network is built on the
`meta` device and each tensor is read once, straight to its target device and
dtype, so loading never holds two copies of the weights: the files are read
with plain reads through one staging buffer (a memory map would keep every page
of a shard resident beside the converted weights).

A module may store its weights otherwise than the checkpoint names them (LLaDA 2.x's
experts, stacked): it then has `to_official` and `from_official` (`StoresOtherwise`),
and `official_state` is what a checkpoint of the network holds. Loading converts one such
module at a time, so the second copy it holds is that module's, never the network's.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import torch
from safetensors.torch import save_file
from torch import nn

from ...errors import ModelLoadingError
from .files import CONFIG_FILE, WEIGHTS_FILE, read_config, weight_files

#: safetensors dtype names
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def _read_tensors(path: Path, device: torch.device | str, dtype: torch.dtype) -> Iterator[tuple[str, torch.Tensor]]:
    """Each tensor of a safetensors file, converted to `dtype` on `device` one at a time.

    The format: an 8-byte little-endian header length, a JSON header mapping names to
    dtype, shape and byte offsets, then the data. Raises ValueError (or the JSON/struct
    errors) for a file that does not hold what its header says.
    """
    with path.open("rb") as file:
        (header_length,) = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(header_length))
        header.pop("__metadata__", None)
        entries = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
        sizes = [end - begin for _, entry in entries for begin, end in [entry["data_offsets"]]]
        staging = bytearray(max(sizes, default=0))
        for (name, entry), size in zip(entries, sizes, strict=True):
            file.seek(8 + header_length + entry["data_offsets"][0])
            if size and file.readinto(memoryview(staging)[:size]) != size:
                raise ValueError(f"the file ends inside tensor {name}")
            stored_dtype = _DTYPES[entry["dtype"]]
            count = size // stored_dtype.itemsize
            if count:
                stored = torch.frombuffer(staging, dtype=stored_dtype, count=count).view(entry["shape"])
            else:
                stored = torch.empty(entry["shape"], dtype=stored_dtype)
            yield name, stored.to(device=device, dtype=dtype, copy=True)


#: `torch.nn.init` functions that module constructors call to draw their random initial weights.
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
                   "kaiming_normal_", "xavier_uniform_", "xavier_normal_")


@contextmanager
def _shapes_only() -> Iterator[None]:
    """Modules built inside get parameters on the meta device, without drawing initial weights.

    Every parameter is about to be replaced by a loaded tensor. Drawing on the meta device would
    still import torch's compiler package (`torch._dynamo`): a second of a fresh process's first load.
    Only the engine thread builds networks, so the module-wide switch is seen by nothing else.
    """
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    for name in saved:
        setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        with torch.device("meta"):
            yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


@runtime_checkable
class StoresOtherwise(Protocol):
    """A module whose tensors the checkpoint names and shapes otherwise; `prefix` is the module's path and a dot."""

    def to_official(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        """Replace the module's tensors in `state` by the checkpoint's (views where they can be)."""

    def from_official(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        """Replace the checkpoint's tensors in `state` by the module's, releasing each as it goes."""


def official_state(network: nn.Module) -> dict[str, torch.Tensor]:
    """`network`'s tensors under the names and in the shapes of its family's checkpoints."""
    state = dict(network.state_dict())
    for prefix, module in network.named_modules():
        if isinstance(module, StoresOtherwise):
            module.to_official(state, f"{prefix}.")
    return state


def _from_official(network: nn.Module, state: dict[str, torch.Tensor]) -> None:
    for prefix, module in network.named_modules():
        if isinstance(module, StoresOtherwise):
            module.from_official(state, f"{prefix}.")


def build_network(config: dict[str, Any], directory: Path | str = ".") -> nn.Module:
    """An uninitialised network for a raw config dict of a checkpoint in `directory` (on the current default device).

    Raises:
        ModelLoadingError: no family recognises the config, or its family refuses it.
    """
    from ..families import FAMILIES

    directory = Path(directory)
    family = next((f for f in FAMILIES if f.recognises(config, directory)), None)
    if family is None:
        raise ModelLoadingError(f"unsupported model_type {config.get('model_type', '')!r}")
    return family.network(config)


def _dtype_of(config: dict[str, Any]) -> torch.dtype:
    name = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    return getattr(torch, name, torch.float32)


def load_network(
    directory: Path | str, device: torch.device | str = "cpu", dtype: torch.dtype | None = None
) -> nn.Module:
    """Build the network of `directory` and load its weights onto `device` in `dtype` (default: the checkpoint's).

    Raises:
        ModelUnavailableError: the directory lacks config or weight files.
        ModelLoadingError: corrupt files, missing or unexpected tensors, or shape mismatches.
    """
    from ..families import detect

    directory = Path(directory)
    config = read_config(directory)
    dtype = dtype or _dtype_of(config)
    family = detect(directory)
    if family.load is not None:
        return family.load(directory, device, dtype)
    with _shapes_only():
        network = family.network(config)
    expected = {name: tensor.shape for name, tensor in official_state(network).items()}
    state: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for path in weight_files(directory):
        try:
            for name, tensor in _read_tensors(path, device, dtype):
                if name not in expected:
                    unexpected.append(name)
                    continue
                if tensor.shape != expected[name]:
                    raise ModelLoadingError(
                        f"shape mismatch for {name}: checkpoint {tuple(tensor.shape)}, "
                        f"config expects {tuple(expected[name])}"
                    )
                state[name] = tensor
        except (ModelLoadingError, torch.OutOfMemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - a corrupt file fails in JSON, struct or torch as much as in our checks
            raise ModelLoadingError(f"corrupt weight file {path.name}: {exc}") from None
    missing = sorted(set(expected) - set(state))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors (e.g. {', '.join(sorted(unexpected)[:3])})")
        raise ModelLoadingError(f"checkpoint in {directory} does not match its config: {'; '.join(parts)}")
    _from_official(network, state)
    network.load_state_dict(state, assign=True)
    return network.eval()


def save_checkpoint(
    network: nn.Module, directory: Path | str, extra_config: dict[str, Any] | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Write `network` as `config.json` + `model.safetensors` in the official layout of its family."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {**cast(Any, network).config.to_dict(), **(extra_config or {})}  # our networks carry their config
    state = {name: t.detach().to(dtype or t.dtype).contiguous().cpu() for name, t in official_state(network).items()}
    config["torch_dtype"] = str(next(iter(state.values())).dtype).removeprefix("torch.")
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory
