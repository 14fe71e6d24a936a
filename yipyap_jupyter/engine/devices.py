"""Which device a model runs on, in which dtype, and how to recognise and recover from out-of-memory.

`auto` prefers an accelerator only when the model fits in its free memory, so a
model that cannot fit starts on the CPU instead of failing half-way through a load.
"""

from __future__ import annotations

import gc

import torch

from ..constants import ACCELERATOR_MEMORY_HEADROOM, DEVICE_CHOICES
from ..errors import ValidationError

CPU = torch.device("cpu")


def _cuda_free_bytes() -> int:
    free, _total = torch.cuda.mem_get_info()
    return int(free)


def _mps_available() -> bool:
    return bool(torch.backends.mps.is_available())


def _mps_free_bytes() -> int:
    return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())


def _fits(estimated_bytes: int, free_bytes: int) -> bool:
    return estimated_bytes <= free_bytes * ACCELERATOR_MEMORY_HEADROOM


def host_available_bytes() -> int | None:
    """Memory the host can still give (Linux's MemAvailable); None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def accelerator_free_bytes() -> tuple[str, int] | None:
    """The accelerator `auto` would use and its free memory; None without one."""
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}", _cuda_free_bytes()
    if _mps_available():
        return "mps", _mps_free_bytes()
    return None


def resolve_device(requested: str, estimated_bytes: int, reclaimable_bytes: int = 0) -> torch.device:
    """The device for a model of `estimated_bytes`.

    `auto`: CUDA if present and the model fits its free memory, else MPS likewise, else CPU.
    `reclaimable_bytes`: accelerator memory the caller will free first (the model being replaced).
    An explicit accelerator that this machine lacks is a `ValidationError`.
    """
    name = str(requested).strip().lower()
    needed = max(0, estimated_bytes - reclaimable_bytes)
    if name == "auto":
        if torch.cuda.is_available() and _fits(needed, _cuda_free_bytes()):
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available() and _fits(needed, _mps_free_bytes()):
            return torch.device("mps")
        return CPU
    if name == "cpu":
        return CPU
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValidationError(
                "device 'cuda' was requested but this machine has no usable CUDA GPU; use 'auto' or 'cpu'"
            )
        if name == "cuda":
            return torch.device("cuda", torch.cuda.current_device())
        index = name.removeprefix("cuda:")
        if not index.isdigit() or int(index) >= torch.cuda.device_count():
            raise ValidationError(
                f"device {requested!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return torch.device("cuda", int(index))
    if name == "mps":
        if not _mps_available():
            raise ValidationError("device 'mps' was requested but Apple MPS is not available here; use 'auto' or 'cpu'")
        return torch.device("mps")
    raise ValidationError(f"unknown device {str(requested)[:50]!r}: use one of {', '.join(DEVICE_CHOICES)}")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA that has it (fp16 otherwise), fp16 on MPS, fp32 on CPU (fast and exact there)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def is_out_of_memory(exc: BaseException) -> bool:
    """An accelerator out-of-memory error, also when wrapped in another exception (cause or context)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, torch.OutOfMemoryError):
            return True
        if isinstance(current, RuntimeError) and "out of memory" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def free_accelerator_memory(device: torch.device) -> None:
    """Collect garbage and hand the accelerator's cached blocks back (after a model is dropped or moved)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
