"""One resident diffusion model, shared by every request of a process.

Loads and generations take turns in arrival order (`RequestQueue`), so a model
switch waits for the generation in flight and a waiting request can say how many
are ahead of it. Fixed-length generations and infillings share a turn: the first
opens a `SharedBatch` on the resident model, and requests for that model queued
right behind it join the batch (up to `max_batch_size` requests and
`max_batch_tokens` positions) instead of waiting for it to finish; those already
waiting when it opens share its first pass. Variable-length
infilling changes its canvas's length every step and runs alone. A load builds the
new model completely before it replaces the old one, so a failed load changes
nothing. When an accelerator runs out of memory the model continues on the CPU and
says so: in `ModelInfo.fallback`, through `on_status`, and in the log.

Torch is imported only when a model is loaded, so importing this module is cheap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from ..constants import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from ..errors import DiffusionError, GenerationCancelled, GenerationError, NoModelLoadedError, ValidationError
from .engine_thread import engine_steps, on_engine_thread
from .model_info import ModelInfo
from .registry import ModelRegistry

if TYPE_CHECKING:
    import torch

    from ..cancel import CancelToken
    from .batch import BatchRow
    from .model import DiffusionModel, GenerationStep, PreparedRun, SamplingOptions
    from .shared_batch import SharedBatch
    from .specs import ModelSpec

logger = logging.getLogger(__name__)

StatusCallback = Callable[[str], None]

#: How often a queued request re-checks its cancel token while it waits.
QUEUE_POLL_SECONDS = 0.1
#: How long a new batch's first pass waits at most for the requests already in line to join it.
GATHER_SECONDS = 0.1
#: Bytes per parameter assumed when sizing a model whose dtype is not chosen yet (bf16 / fp16).
ACCELERATOR_BYTES_PER_PARAMETER = 2
DTYPES = ("float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def _quiet(message: str) -> None:
    """The `on_status` of callers that did not ask for status messages."""


@dataclass(frozen=True)
class Status:
    """Where a request stands before or around its steps: queued, loading, fell back to CPU.

    `restart`: the steps so far are abandoned and the request starts over from its first step.
    """

    message: str
    restart: bool = False


class RequestQueue:
    """First come, first served: one request runs at a time, the others wait and learn their place.

    Not tied to a thread: a generation may be iterated step by step from different
    executor threads and still release its turn from whichever thread ends it.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._line: list[object] = []
        #: requests right behind the front that were offered the front's ticket and could not join
        self._declined: dict[object, object] = {}

    @property
    def length(self) -> int:
        """Requests running or waiting."""
        with self._changed:
            return len(self._line)

    def gather(self, holder: object, timeout: float) -> None:
        """Let the requests in line behind `holder` join the batch it has just opened on its ticket.

        Wakes them, and waits until every one that can has joined: until the request right
        behind `holder` has declined, or nobody is left behind it (at most `timeout` seconds).
        So requests that were already waiting share the batch's first pass.
        """
        with self._changed:
            self._declined = {t: h for t, h in self._declined.items() if h is not holder}  # offered no batch yet
            self._changed.notify_all()
            self._changed.wait_for(
                lambda: len(self._line) < 2 or self._line[0] is not holder or self._declined.get(self._line[1]) is holder,
                timeout,
            )

    def waiting(
        self, cancel: CancelToken | None = None, *, ticket: object | None = None,
        join: Callable[[object], bool] | None = None,
    ) -> Generator[str, None, None]:
        """Join the line; yield "queued: N requests ahead" whenever N changes; leave when closed.

        The caller's turn starts when the iterator yields "" (the caller then holds it until it
        closes the iterator). With `join`, a request with only one entry ahead of it offers itself
        to that entry's `ticket`: when `join(ticket)` accepts, the request leaves the line and the
        iterator ends without a turn.

        Raises:
            GenerationCancelled: `cancel` was cancelled while waiting (the request leaves the line).
        """
        ticket = object() if ticket is None else ticket
        with self._changed:
            self._line.append(ticket)
        try:
            reported = 0
            while True:
                with self._changed:
                    ahead = self._line.index(ticket)
                    if ahead == 1:
                        if join is not None and join(self._line[0]):
                            return
                        if self._declined.get(ticket) is not self._line[0]:
                            self._declined[ticket] = self._line[0]
                            self._changed.notify_all()  # a gather waits for this answer
                    if ahead == reported and ahead > 0:
                        self._changed.wait(QUEUE_POLL_SECONDS if cancel is not None else None)
                        ahead = self._line.index(ticket)
                if cancel is not None:
                    cancel.raise_if_cancelled(0)
                if ahead == 0:
                    break
                if ahead != reported:
                    reported = ahead
                    yield f"queued: {ahead} request{'s' if ahead > 1 else ''} ahead"
            yield ""  # the turn: the empty message tells the holder it is at the front
        finally:
            with self._changed:
                self._line.remove(ticket)
                self._declined.pop(ticket, None)
                self._changed.notify_all()

    @contextmanager
    def turn(self, on_status: StatusCallback = _quiet, cancel: CancelToken | None = None) -> Iterator[None]:
        """The turn as a `with` block, for work that reports through a callback (load, unload)."""
        line = self.waiting(cancel)
        try:
            for message in line:
                if not message:
                    break
                on_status(message)
            yield
        finally:
            line.close()


@dataclass(eq=False)
class _Ticket:
    """A request's place in line: the device it started on, and the batch it opened for others to join."""

    batch: SharedBatch | None = None
    device: torch.device | None = None


@dataclass(frozen=True)
class _Wanted:
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
        return not exact or (current.device == str(self.device) and current.dtype == _dtype_name(self.dtype))


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


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


class DiffusionModelManager:
    """Holds at most one `DiffusionModel` and serialises everything that uses or replaces it."""

    def __init__(
        self, registry: ModelRegistry | None = None, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        if max_batch_size < 1 or max_batch_tokens < 1:
            raise ValidationError("max_batch_size and max_batch_tokens must be at least 1")
        self.registry = registry or ModelRegistry()
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self._fallback = threading.Lock()  # one move to the CPU when a batch's requests all run out of memory
        self._queue = RequestQueue()
        self._state = threading.Lock()  # guards the three fields below for readers that do not queue
        self._model: DiffusionModel | None = None
        self._device: torch.device | None = None
        self._info: ModelInfo | None = None

    # -- state --------------------------------------------------------------------

    @property
    def loaded_model(self) -> DiffusionModel | None:
        """The resident model itself (None when nothing is loaded); requests go through `generate`/`infill`."""
        return self._model

    def current(self) -> ModelInfo | None:
        """The loaded model's info, or None."""
        with self._state:
            return self._info

    def models(self) -> list[ModelInfo]:
        """Every known model's cache state, with the loaded one (known or local) marked."""
        current = self.current()
        infos = [self.registry.info(spec) for spec in self.registry.specs()]
        if current is None:
            return infos
        merged = [current if info.id == current.id else info for info in infos]
        return merged if any(info.id == current.id for info in infos) else merged + [current]

    # -- loading ------------------------------------------------------------------

    def load(
        self,
        model_id_or_path: str,
        device: str = "auto",
        dtype: str | torch.dtype | None = None,
        on_status: StatusCallback | None = None,
    ) -> ModelInfo:
        """Load (or switch to) a model; the previous one stays in service until the new one is ready.

        Raises:
            ModelUnavailableError: unknown id or weights not on disk (nothing is downloaded).
            ModelLoadingError: corrupt or incompatible weights.
            ValidationError: a device or dtype this machine cannot provide.
        """
        say = on_status or _quiet
        wanted = self._wanted(model_id_or_path, device, dtype)
        with self._queue.turn(say):
            current = self.current()
            if current is not None and wanted.matches(current, exact=True):
                say(f"{wanted.spec.id} is already loaded on {wanted.device}")
                return current
            say(f"loading {wanted.spec.id} on {wanted.device}")
            return self._load_in_turn(wanted, say)

    def spec(self, model_id_or_path: str) -> ModelSpec:
        """The spec of a known id or local directory (cheap: no weights are read)."""
        return self.registry.resolve(model_id_or_path)[0]

    def unload(self) -> None:
        """Drop the model and give its host and accelerator memory back."""
        with self._queue.turn():
            previous = self.current()
            self._replace(None, None, None)
        if previous is not None:
            logger.info("unloaded %s", previous.id)

    def download(self, model_id: str, progress: Callable[[int, int], None] | None = None) -> ModelInfo:
        """Fetch a known model into the Hugging Face cache (explicit action; see `ModelRegistry.download`)."""
        logger.info("downloading %s", model_id)
        path = self.registry.download(model_id, progress)
        spec, _ = self.registry.resolve(model_id)
        return self.registry.info(spec, path)

    # -- generation ---------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        options: SamplingOptions,
        cancel: CancelToken | None = None,
        *,
        model: str | None = None,
        device: str = "auto",
    ) -> Generator[Status | GenerationStep, None, None]:
        """Statuses and steps of a generation, holding the manager's turn until exhausted or closed.

        With `model`, that model is loaded first (on `device`) in the same turn unless it is the
        resident one, so the request runs on the model it names; without, on the loaded model.

        Raises (when iterated): NoModelLoadedError, ModelUnavailableError, ModelLoadingError,
        ValidationError, GenerationError, GenerationCancelled.
        """
        return self._run(lambda m: m.prepare_generate(prompt, options), None, model, device, cancel)

    def infill(
        self,
        prefix: str,
        suffix: str,
        options: SamplingOptions,
        length: int | None = None,
        cancel: CancelToken | None = None,
        *,
        variable: bool = False,
        model: str | None = None,
        device: str = "auto",
    ) -> Generator[Status | GenerationStep, None, None]:
        """Statuses and steps of an infilling (fixed `length`, or `variable`); same terms as `generate`."""
        if variable:
            alone = lambda m: m.infill(prefix, suffix, options, length=length, cancel=cancel, variable=True)
            return self._run(None, alone, model, device, cancel)
        return self._run(lambda m: m.prepare_infill(prefix, suffix, options, length), None, model, device, cancel)

    # -- internals ----------------------------------------------------------------

    def _run(
        self,
        prepare: Callable[[DiffusionModel], PreparedRun] | None,
        alone: Callable[[DiffusionModel], Iterator[GenerationStep]] | None,
        model_id: str | None,
        device: str,
        cancel: CancelToken | None,
    ) -> Generator[Status | GenerationStep, None, None]:
        """Load `model_id` if it is not resident, then decode `prepare`'s run in a shared batch (or `alone`).

        On accelerator out-of-memory the model moves to CPU and the request starts over, announced
        by a `Status` with `restart`: consumers that accumulate per-step text drop it there.
        """
        from .devices import is_out_of_memory

        wanted = self._wanted(model_id, device, None) if model_id is not None else None
        while True:
            ticket = _Ticket()
            try:
                yield from self._attempt(prepare, alone, wanted, cancel, ticket)
                return
            except GenerationCancelled:
                raise
            except Exception as exc:  # torch and tokenizers raise plain runtime errors
                on = ticket.device
                if on is None or on.type == "cpu" or not is_out_of_memory(exc):
                    if isinstance(exc, DiffusionError):
                        raise
                    logger.error("generation failed on %s: %s", on, type(exc).__name__)
                    raise GenerationError(f"generation failed on {on}: {type(exc).__name__}: {exc}") from exc
            with self._fallback:  # every request of a batch lands here; the first moves the model
                model = self._model
                if model is not None and self._device == on:
                    self._move_to_cpu(model, f"out of memory on {on} during generation; running on cpu")
            yield Status(f"out of memory on {on}; continuing on cpu", restart=True)

    def _attempt(
        self,
        prepare: Callable[[DiffusionModel], PreparedRun] | None,
        alone: Callable[[DiffusionModel], Iterator[GenerationStep]] | None,
        wanted: _Wanted | None,
        cancel: CancelToken | None,
        ticket: _Ticket,
    ) -> Generator[Status | GenerationStep, None, None]:
        """One try: join the batch ahead, or wait for the turn, load, and open a batch (or run alone)."""
        from .shared_batch import SharedBatch

        joined: list[tuple[SharedBatch, BatchRow, PreparedRun]] = []

        def join(ahead: object) -> bool:
            batch = ahead.batch if isinstance(ahead, _Ticket) else None
            if prepare is None or batch is None or batch.model is not self._model:
                return False
            current = self.current()
            if wanted is not None and (current is None or not wanted.matches(current, exact=False)):
                return False
            run = prepare(batch.model)
            row = batch.join(run, cancel)
            if row is not None:
                joined.append((batch, row, run))
                ticket.device = self._device
            return row is not None

        line = self._queue.waiting(cancel, ticket=ticket, join=join)
        handed_over = False
        try:
            for message in line:
                if not message:
                    break
                yield Status(message)
            if not joined:
                current = self.current()
                if wanted is not None and (current is None or not wanted.matches(current, exact=False)):
                    yield Status(f"loading {wanted.spec.id} on {wanted.device}")
                    said: list[str] = []
                    self._load_in_turn(wanted, said.append)
                    yield from (Status(message) for message in said)
                model = self._model
                if model is None:
                    raise NoModelLoadedError("no model is loaded: load one first (for example 'tiny')")
                ticket.device = self._device
                if prepare is None:
                    assert alone is not None, "a request either prepares a batch row or runs alone"
                    yield from engine_steps(alone(model))
                    return
                batch = SharedBatch(model, max_rows=self.max_batch_size, max_tokens=self.max_batch_tokens,
                                    release=line.close)
                run = prepare(model)
                row = batch.join(run, cancel)
                assert row is not None, "an empty batch takes any request"
                joined.append((batch, row, run))
                ticket.batch, handed_over = batch, True
                try:
                    self._queue.gather(ticket, GATHER_SECONDS)
                finally:
                    batch.gathered()
            batch, row, run = joined[0]
            for item in batch.steps(row):
                yield Status(item) if isinstance(item, str) else run.decoder.step(item)
        finally:
            if not handed_over:
                line.close()

    def _wanted(self, model_id_or_path: str, device: str, dtype: str | torch.dtype | None) -> _Wanted:
        """Where a load would put a model: resolved spec, path, device and dtype (raises before any turn)."""
        from .devices import default_dtype, resolve_device

        spec, path = self.registry.resolve(model_id_or_path)
        info = self.registry.info(spec, path)
        wanted_dtype = parse_dtype(dtype)
        target = resolve_device(device, self._estimate_bytes(info, wanted_dtype), self._reclaimable_bytes())
        final_dtype = wanted_dtype or default_dtype(target)
        if str(device).strip().lower() == "auto" and target.type == "cpu":
            self._check_host_fit(spec.id, info, wanted_dtype, final_dtype)
        return _Wanted(spec, path, info, target, final_dtype)

    def _check_host_fit(self, model_id: str, info: ModelInfo, asked: torch.dtype | None, dtype: torch.dtype) -> None:
        """`auto` chose the CPU: refuse, before loading anything, a model the host's memory cannot hold either.

        Raises:
            ModelLoadingError: saying what the model needs on an accelerator and on the CPU, and what there is.
        """
        from ..errors import ModelLoadingError
        from .devices import accelerator_free_bytes, host_available_bytes

        needed = self._estimate_bytes(info, dtype)
        available = host_available_bytes()
        if available is None or needed <= available:
            return
        def gib(size: int) -> str:
            return f"{size / 2**30:.1f} GiB"

        accelerator = accelerator_free_bytes()
        on_accelerator = self._estimate_bytes(info, asked)
        where = (f"{gib(accelerator[1])} free on {accelerator[0]}" if accelerator else "no GPU on this machine")
        raise ModelLoadingError(
            f"{model_id} does not fit: it needs about {gib(on_accelerator)} on a GPU ({where}) or about "
            f"{gib(needed)} of memory on the CPU in {str(dtype).removeprefix('torch.')} ({gib(available)} available)",
            retryable=False,
        )

    def _load_in_turn(self, wanted: _Wanted, say: StatusCallback) -> ModelInfo:
        """Build the model and make it the resident one (the caller holds the turn)."""
        spec, path = wanted.spec, wanted.path
        logger.info("loading %s from %s on %s (%s)", spec.id, path, wanted.device, _dtype_name(wanted.dtype))
        started = time.perf_counter()
        model, placed, fallback = on_engine_thread(self._build, spec, path, wanted.device, wanted.dtype, say)
        loaded = wanted.info.model_copy(
            update={
                "loaded": True,
                "device": str(placed),
                "dtype": _dtype_name(model.dtype),
                "fallback": fallback,
                "parameters": wanted.info.parameters or model.parameters,
                "context_length": model.context_length,
            }
        )
        self._replace(model, placed, loaded)
        logger.info("loaded %s on %s in %.1f s", spec.id, placed, time.perf_counter() - started)
        say(f"loaded {spec.id} on {placed}")
        return loaded

    def _build(
        self, spec: ModelSpec, path: Any, device: torch.device, dtype: torch.dtype, say: StatusCallback
    ) -> tuple[DiffusionModel, torch.device, str | None]:
        """Load on `device`; on accelerator out-of-memory make room (or give up on it) and retry (on the engine thread).

        The previous model, if it sits on the same accelerator, is first moved to the CPU to make
        room (it stays usable there, and goes back if the new load fails for another reason).
        If the new model still does not fit, it loads on the CPU.
        """
        from .devices import CPU, free_accelerator_memory, is_out_of_memory
        from .model import DiffusionModel

        try:
            return DiffusionModel.load(spec, path, device, dtype), device, None
        except Exception as exc:
            if device.type == "cpu" or not is_out_of_memory(exc):
                raise
        free_accelerator_memory(device)
        previous, previous_device = self._model, self._device
        if previous is not None and previous_device == device:
            say(f"out of memory on {device}; moving the previous model to cpu to make room")
            self._move_to_cpu(previous, f"moved to cpu to make room for {spec.id}")
            try:
                return DiffusionModel.load(spec, path, device, dtype), device, None
            except Exception as exc:
                if not is_out_of_memory(exc):
                    self._restore(previous, previous_device)
                    raise
            free_accelerator_memory(device)
        fallback = f"out of memory on {device} at load; running on cpu"
        logger.warning("%s: %s", spec.id, fallback)
        say(fallback)
        try:
            return DiffusionModel.load(spec, path, CPU, dtype), CPU, fallback
        except Exception:
            if previous is not None and previous_device == device:
                self._restore(previous, previous_device)
            raise

    def _move_to_cpu(self, model: DiffusionModel, fallback: str) -> None:
        """Move the resident model to the CPU after accelerator out-of-memory, and record why."""
        from .devices import CPU, free_accelerator_memory

        device = self._device
        on_engine_thread(model.to, CPU)
        if device is not None:
            free_accelerator_memory(device)
        logger.warning("%s", fallback)
        with self._state:
            self._device = CPU
            if self._info is not None:
                self._info = self._info.model_copy(update={"device": str(CPU), "fallback": fallback})

    def _restore(self, model: DiffusionModel, device: torch.device) -> None:
        """Put a model moved aside for a load that failed back where it was, if it still fits."""
        from .devices import free_accelerator_memory, is_out_of_memory

        try:
            model.to(device)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            free_accelerator_memory(device)
            return
        with self._state:
            self._device = device
            if self._info is not None:
                self._info = self._info.model_copy(update={"device": str(device), "fallback": None})

    def _replace(self, model: DiffusionModel | None, device: torch.device | None, info: ModelInfo | None) -> None:
        """Swap the resident model and free what the old one held."""
        from .devices import free_accelerator_memory

        with self._state:
            old_device = self._device
            self._model, self._device, self._info = model, device, info
        if old_device is not None:
            free_accelerator_memory(old_device)

    def _estimate_bytes(self, info: ModelInfo, dtype: torch.dtype | None) -> int:
        """Memory the model's weights will take: parameters x dtype width, else its size on disk."""
        if info.parameters is None:
            return info.size_on_disk
        width = dtype.itemsize if dtype is not None else ACCELERATOR_BYTES_PER_PARAMETER
        return info.parameters * width

    def _reclaimable_bytes(self) -> int:
        """Accelerator memory the resident model holds (it makes way when another model needs the room)."""
        model, device = self._model, self._device
        if model is None or device is None or device.type == "cpu":
            return 0
        return model.parameters * model.dtype.itemsize
