"""The scheduler: seats each generation in a batch, or gives it a turn of its own.

Fixed-length generations and infillings share a turn: the first opens a `SharedBatch` on
the resident model, and requests for that model queued right behind it join the batch
(up to `max_batch_size` requests and `max_batch_tokens` positions) instead of waiting for
it to finish; those already waiting when it opens share its first pass. A request that
names a model other than the resident one loads it in its turn first. Variable-length
infilling changes its canvas's length every step and runs alone. On accelerator
out-of-memory the model moves to the CPU and the request starts over.

Torch is imported only when a request runs, so importing this module is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import DiffusionError, GenerationCancelled, GenerationError, NoModelLoadedError
from .engine_thread import engine_steps
from .queue import RequestQueue
from .residency import Residency, Wanted
from .status import Status

if TYPE_CHECKING:
    import torch

    from ...cancel import CancelToken
    from ..model import DiffusionModel, GenerationStep, PreparedRun
    from .batch import BatchRow
    from .shared_batch import SharedBatch

logger = logging.getLogger(__name__)

#: How long a new batch's first pass waits at most for the requests already in line to join it.
GATHER_SECONDS = 0.1

Prepare = Callable[["DiffusionModel"], "PreparedRun"]
Alone = Callable[["DiffusionModel"], "Iterator[GenerationStep]"]


@dataclass(eq=False)
class _Ticket:
    """A request's place in line: the device it started on, and the batch it opened for others to join."""

    batch: SharedBatch | None = None
    device: torch.device | None = None


class Scheduler:
    """Runs requests on the resident model in arrival order, sharing batches where they can."""

    def __init__(self, queue: RequestQueue, residency: Residency, *, max_batch_size: int, max_batch_tokens: int) -> None:
        self.queue = queue
        self.residency = residency
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens

    def run(
        self, prepare: Prepare | None, alone: Alone | None, model_id: str | None, device: str,
        cancel: CancelToken | None,
    ) -> Generator[Status | GenerationStep, None, None]:
        """Load `model_id` (on `device`) if it is not resident, then decode `prepare`'s run in a shared batch (or `alone`).

        On accelerator out-of-memory the model moves to CPU and the request starts over, announced
        by a `Status` with `restart`: consumers that accumulate per-step text drop it there.
        """
        from ..devices import is_out_of_memory

        wanted = self.residency.wanted(model_id, device, None) if model_id is not None else None
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
            self.residency.fall_back_to_cpu(on)
            yield Status(f"out of memory on {on}; continuing on cpu", restart=True)

    def _attempt(
        self, prepare: Prepare | None, alone: Alone | None, wanted: Wanted | None, cancel: CancelToken | None,
        ticket: _Ticket,
    ) -> Generator[Status | GenerationStep, None, None]:
        """One try: join the batch ahead, or wait for the turn, load, and open a batch (or run alone)."""
        from .shared_batch import SharedBatch

        joined: list[tuple[SharedBatch, BatchRow, PreparedRun]] = []
        prepared: dict[int, PreparedRun] = {}  # one tokenization per model, however often the request offers itself

        def join(ahead: object) -> bool:
            """Take a seat in the batch of the request ahead (called outside the queue's lock)."""
            batch = ahead.batch if isinstance(ahead, _Ticket) else None
            resident = self.residency.resident()
            if prepare is None or batch is None or resident is None or batch.model is not resident.model:
                return False
            if wanted is not None and not wanted.matches(resident.info, exact=False):
                return False
            run = prepared.get(id(batch.model))
            if run is None:
                run = prepared[id(batch.model)] = prepare(batch.model)
            row = batch.join(run, cancel)
            if row is not None:
                joined.append((batch, row, run))
                ticket.device = resident.device
            return row is not None

        turn = yield from self.queue.wait(cancel, ticket=ticket, join=join)
        handed_over = False
        try:
            if turn is not None:
                resident = self.residency.resident()
                if wanted is not None and (resident is None or not wanted.matches(resident.info, exact=False)):
                    yield Status(f"loading {wanted.spec.id} on {wanted.device}")
                    said: list[Status] = []
                    self.residency.load(wanted, said.append)
                    yield from said
                    resident = self.residency.resident()
                if resident is None:
                    raise NoModelLoadedError("no model is loaded: load one first (for example 'tiny')")
                ticket.device = resident.device
                if prepare is None:
                    assert alone is not None, "a request either prepares a batch row or runs alone"
                    yield from engine_steps(alone(resident.model))
                    return
                batch = SharedBatch(resident.model, max_rows=self.max_batch_size, max_tokens=self.max_batch_tokens,
                                    release=turn.release)
                run = prepare(resident.model)
                row = batch.join(run, cancel)
                assert row is not None, "an empty batch takes any request"
                joined.append((batch, row, run))
                ticket.batch, handed_over = batch, True
                try:
                    self.queue.gather(ticket, GATHER_SECONDS)
                finally:
                    batch.gathered()
            batch, row, run = joined[0]
            for item in batch.steps(row):
                yield item if isinstance(item, Status) else run.decoder.step(item)
        finally:
            if turn is not None and not handed_over:
                turn.release()
