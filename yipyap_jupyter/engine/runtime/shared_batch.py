"""One decoding batch shared by the threads of its requests: whichever is free runs the next pass.

The service runs each request on its caller's thread and the scheduler yields its steps
from there; a batch has no thread of its own. A request's thread that finds no step
waiting for it and nobody stepping the batch steps it once (for every row), then hands
out what it made; the others wait on the batch's condition. (The pass's torch work itself runs on
the engine thread, see `engine_thread`.) So the batch runs as long as
any of its requests is listening, a slow listener holds up nobody, and a request whose
listener leaves (a closed stream, a cancelled cell) is dropped at the next pass.

Requests join between passes while the batch has room (`max_rows` requests, `max_tokens`
positions, the lower cap after an out-of-memory split), without waiting for the pass in
flight; the first pass waits until the opener says the requests that were already in
line have joined (`gathered`). The last to leave closes the batch and releases the
opener's `Turn`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ...cancel import CancelToken
from ..model import DiffusionModel, PreparedRun
from ..samplers.base import SamplerStep
from .batch import BatchRow, DecodingBatch
from .engine_thread import on_engine_thread
from .status import Status


class SharedBatch:
    """The batch of the resident model's running requests; `release` runs when the last one leaves."""

    def __init__(self, model: DiffusionModel, *, max_rows: int, max_tokens: int, release: Callable[[], None]) -> None:
        self.model = model
        self.max_rows = max_rows
        self._batch = DecodingBatch(model.fixed_length_network, max_tokens)
        self._release = release
        self._changed = threading.Condition()
        self._driving = False
        self._joining: list[BatchRow] = []
        self._leaving: list[BatchRow] = []
        self._members = 0
        self._gathering = True  # the first pass waits for `gathered`
        self.open = True

    def gathered(self) -> None:
        """Let the first pass run: the requests that were waiting when the batch opened have joined."""
        with self._changed:
            self._gathering = False
            self._changed.notify_all()

    def join(self, run: PreparedRun, cancel: CancelToken | None) -> BatchRow | None:
        """The request's row from the next pass, or None when the batch is closed or has no room for it.

        Never waits for the pass in flight. The program checks its arguments when the next pass
        starts it; for a row it refuses, `steps` raises why.
        """
        with self._changed:
            cap = self._batch.max_tokens or 0
            tokens = self._batch.tokens + sum(row.tokens for row in self._joining)
            if not self.open or self._members >= self.max_rows or (self._members and tokens + run.tokens > cap):
                return None
            row = BatchRow(run.program, cancel, run.tokens)
            self._members += 1
            self._joining.append(row)
            return row

    def steps(self, row: BatchRow) -> Iterator[SamplerStep | Status]:
        """`row`'s steps (and the batch's statuses) as they are made, stepping the batch when nobody else does.

        Raises: what the row failed with (GenerationCancelled, GenerationTimeoutError, out of memory, ...).
        """
        try:
            while True:
                with self._changed:
                    while not row.outbox and not row.done and (self._driving or self._gathering):
                        self._changed.wait()
                    drive = not row.outbox and not row.done
                    if drive:
                        self._driving = True
                        self._admit_and_drop()
                if drive:
                    try:
                        on_engine_thread(self._batch.step)
                    finally:
                        with self._changed:
                            self._driving = False
                            if self._batch.exhausted:
                                self.open = False  # falling back to the CPU: nobody joins this batch any more
                            self._changed.notify_all()
                    continue
                while row.outbox:
                    yield row.outbox.popleft()
                if row.done:
                    if row.error is not None:
                        raise row.error
                    return
        finally:
            self._leave(row)

    # -- internals ----------------------------------------------------------------

    def _admit_and_drop(self) -> None:
        """Between passes (the caller holds the condition and the drive): joiners in, abandoned rows out."""
        for row in self._joining:
            self._batch.admit(row)
        self._joining.clear()
        for row in self._leaving:
            self._batch.drop(row)
        self._leaving.clear()

    def _leave(self, row: BatchRow) -> None:
        with self._changed:
            if not row.done:
                if row in self._joining:
                    self._joining.remove(row)
                else:
                    self._leaving.append(row)
            self._members -= 1
            last = self._members == 0
            if last:
                self.open = False
        if last:
            self._release()
