"""Residency: which model is loaded, on which device, described how; the one owner of that triple.

A load builds the new model completely before it replaces the old one, so a failed load
changes nothing. When an accelerator runs out of memory at load, the previous model makes
room (it moves to the CPU, and back if the load fails otherwise), and the new one loads on
the CPU if it still does not fit; when it runs out during generation the resident model
moves to the CPU. Each says so: in `ModelInfo.fallback`, in a `Status`, and in the log.

The model, its device and its info change together under one lock (`Resident`); readers
take a snapshot. Loads, swaps and moves run while the caller holds the queue's turn.
Torch is imported only when a model is loaded, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ...errors import ValidationError
from ..model_info import ModelInfo
from ..registry import ModelRegistry
from .engine_thread import on_engine_thread
from .status import Status, StatusCallback

if TYPE_CHECKING:
    import torch

    from ..model import DiffusionModel
    from ..specs import ModelSpec

logger = logging.getLogger(__name__)

#: Bytes per parameter assumed when sizing a model whose dtype is not chosen yet (bf16 / fp16).
ACCELERATOR_BYTES_PER_PARAMETER = 2
DTYPES = ("float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """A torch dtype from a name such as "bfloat16" / "bf16"; None or "auto" means the device's default."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).strip().lower()
    if name == "auto":
        return None
    name = DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise ValidationError(f"unknown dtype {str(dtype)[:30]!r}: use auto, {', '.join(DTYPES)}")
    return cast(torch.dtype, getattr(torch, name))


def dtype_name(dtype: Any) -> str:
    """"bfloat16" for `torch.bfloat16`."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Resident:
    """The loaded model, the device it sits on, and its info (whose `device` says the same)."""

    model: DiffusionModel
    device: torch.device
    info: ModelInfo

    def moved(self, device: torch.device, fallback: str | None) -> Resident:
        """The same model after a move to `device` (`fallback` says why it left the accelerator)."""
        return Resident(self.model, device, self.info.model_copy(update={"device": str(device), "fallback": fallback}))


@dataclass(frozen=True)
class Wanted:
    """A load, resolved before it waits for its turn."""

    spec: ModelSpec
    path: Any
    info: ModelInfo
    device: torch.device
    dtype: torch.dtype

    def matches(self, current: ModelInfo, *, exact: bool) -> bool:
        """The resident model is this one (and, when `exact`, on the same device and dtype)."""
        if current.path != self.info.path:
            return False
        return not exact or (current.device == str(self.device) and current.dtype == dtype_name(self.dtype))


class Residency:
    """Holds at most one `DiffusionModel`: loads it, swaps it, moves it to the CPU when memory runs out."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()  # guards `_resident`
        self._resident: Resident | None = None
        self._falling_back = threading.Lock()  # one move to the CPU when a batch's requests all run out of memory

    def resident(self) -> Resident | None:
        """The loaded model with its device and info, as one snapshot (None when nothing is loaded)."""
        with self._lock:
            return self._resident

    def current(self) -> ModelInfo | None:
        """The loaded model's info, or None."""
        resident = self.resident()
        return resident.info if resident is not None else None

    def wanted(self, model_id_or_path: str, device: str, dtype: str | torch.dtype | None) -> Wanted:
        """Where a load would put a model: resolved spec, path, device and dtype (raises before any turn)."""
        from ..devices import default_dtype, resolve_device

        spec, path = self.registry.resolve(model_id_or_path)
        info = self.registry.info(spec, path)
        wanted_dtype = parse_dtype(dtype)
        target = resolve_device(device, _estimate_bytes(info, wanted_dtype), self._reclaimable_bytes())
        final_dtype = wanted_dtype or default_dtype(target)
        if str(device).strip().lower() == "auto" and target.type == "cpu":
            _check_host_fit(spec.id, info, wanted_dtype, final_dtype)
        return Wanted(spec, path, info, target, final_dtype)

    def load(self, wanted: Wanted, say: StatusCallback) -> ModelInfo:
        """Build the model and make it the resident one (the caller holds the turn)."""
        spec, path = wanted.spec, wanted.path
        logger.info("loading %s from %s on %s (%s)", spec.id, path, wanted.device, dtype_name(wanted.dtype))
        started = time.perf_counter()
        model, placed, fallback = on_engine_thread(self._build, spec, path, wanted.device, wanted.dtype, say)
        loaded = wanted.info.model_copy(
            update={
                "loaded": True,
                "device": str(placed),
                "dtype": dtype_name(model.dtype),
                "fallback": fallback,
                "parameters": wanted.info.parameters or model.parameters,
                "context_length": model.context_length,
            }
        )
        self._replace(Resident(model, placed, loaded))
        logger.info("loaded %s on %s in %.1f s", spec.id, placed, time.perf_counter() - started)
        say(Status(f"loaded {spec.id} on {placed}"))
        return loaded

    def unload(self) -> ModelInfo | None:
        """Drop the model and give its memory back (the caller holds the turn); the info of what was loaded."""
        previous = self.current()
        self._replace(None)
        return previous

    def fall_back_to_cpu(self, device: torch.device) -> None:
        """After out of memory on `device` during generation: move the model to the CPU, if it is still there.

        Every request of a batch that ran out of memory calls this; the first moves the model.
        """
        with self._falling_back:
            resident = self.resident()
            if resident is not None and resident.device == device:
                self._move_to_cpu(resident, f"out of memory on {device} during generation; running on cpu")

    # -- internals ----------------------------------------------------------------

    def _build(
        self, spec: ModelSpec, path: Any, device: torch.device, dtype: torch.dtype, say: StatusCallback
    ) -> tuple[DiffusionModel, torch.device, str | None]:
        """Load on `device`; on accelerator out-of-memory make room (or give up on it) and retry (on the engine thread).

        The previous model, if it sits on the same accelerator, is first moved to the CPU to make
        room (it stays usable there, and goes back if the new load fails for another reason).
        If the new model still does not fit, it loads on the CPU.
        """
        from ..devices import CPU, free_accelerator_memory, is_out_of_memory
        from ..model import DiffusionModel

        try:
            return DiffusionModel.load(spec, path, device, dtype), device, None
        except Exception as exc:
            if device.type == "cpu" or not is_out_of_memory(exc):
                raise
        free_accelerator_memory(device)
        previous = self.resident()
        aside = previous if previous is not None and previous.device == device else None
        if aside is not None:
            say(Status(f"out of memory on {device}; moving the previous model to cpu to make room"))
            self._move_to_cpu(aside, f"moved to cpu to make room for {spec.id}")
            try:
                return DiffusionModel.load(spec, path, device, dtype), device, None
            except Exception as exc:
                if not is_out_of_memory(exc):
                    self._restore(aside)
                    raise
            free_accelerator_memory(device)
        fallback = f"out of memory on {device} at load; running on cpu"
        logger.warning("%s: %s", spec.id, fallback)
        say(Status(fallback))
        try:
            return DiffusionModel.load(spec, path, CPU, dtype), CPU, fallback
        except Exception:
            if aside is not None:
                self._restore(aside)
            raise

    def _move_to_cpu(self, resident: Resident, fallback: str) -> None:
        """Move the resident model to the CPU after accelerator out-of-memory, and record why."""
        from ..devices import CPU, free_accelerator_memory

        on_engine_thread(resident.model.to, CPU)
        free_accelerator_memory(resident.device)
        logger.warning("%s", fallback)
        self._swap_if_current(resident, resident.moved(CPU, fallback))

    def _restore(self, resident: Resident) -> None:
        """Put a model moved aside for a load that failed back where it was (`resident`), if it still fits."""
        from ..devices import free_accelerator_memory, is_out_of_memory

        try:
            resident.model.to(resident.device)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            free_accelerator_memory(resident.device)
            return
        with self._lock:
            if self._resident is not None and self._resident.model is resident.model:
                self._resident = resident.moved(resident.device, None)

    def _swap_if_current(self, old: Resident, new: Resident) -> None:
        with self._lock:
            if self._resident is old:
                self._resident = new

    def _replace(self, resident: Resident | None) -> None:
        """Swap the resident model and free what the old one held."""
        from ..devices import free_accelerator_memory

        with self._lock:
            old, self._resident = self._resident, resident
        if old is not None:
            free_accelerator_memory(old.device)

    def _reclaimable_bytes(self) -> int:
        """Accelerator memory the resident model holds (it makes way when another model needs the room)."""
        resident = self.resident()
        if resident is None or resident.device.type == "cpu":
            return 0
        return resident.model.parameters * resident.model.dtype.itemsize


def _estimate_bytes(info: ModelInfo, dtype: torch.dtype | None) -> int:
    """Memory the model's weights will take: parameters x dtype width, else its size on disk."""
    if info.parameters is None:
        return info.size_on_disk
    width = dtype.itemsize if dtype is not None else ACCELERATOR_BYTES_PER_PARAMETER
    return info.parameters * width


def _check_host_fit(model_id: str, info: ModelInfo, asked: torch.dtype | None, dtype: torch.dtype) -> None:
    """`auto` chose the CPU: refuse, before loading anything, a model the host's memory cannot hold either.

    Raises:
        ModelLoadingError: saying what the model needs on an accelerator and on the CPU, and what there is.
    """
    from ...errors import ModelLoadingError
    from ..devices import accelerator_free_bytes, host_available_bytes

    needed = _estimate_bytes(info, dtype)
    available = host_available_bytes()
    if available is None or needed <= available:
        return

    def gib(size: int) -> str:
        return f"{size / 2**30:.1f} GiB"

    accelerator = accelerator_free_bytes()
    on_accelerator = _estimate_bytes(info, asked)
    where = (f"{gib(accelerator[1])} free on {accelerator[0]}" if accelerator else "no GPU on this machine")
    raise ModelLoadingError(
        f"{model_id} does not fit: it needs about {gib(on_accelerator)} on a GPU ({where}) or about "
        f"{gib(needed)} of memory on the CPU in {dtype_name(dtype)} ({gib(available)} available)",
        retryable=False,
    )
