"""Many requests' samplers sharing the network: one packed forward pass per step for every row.

Each row is a sampler `Program` (see `samplers.base`) with its own canvas, schedule,
generator and cancel token. A step asks every row for its next `Forward`, runs them
all as one `Packing` (or as a plain pass when one row without a cache is alone, the
official code's pass), and gives each program its logits back. A network that cannot
pack (a library's class: its `packs` attribute is False) runs one pass per row instead,
each the row's solo pass. Rows join between
steps and leave when they finish, fail or are cancelled, without disturbing the
others; each row computes exactly what it would alone (see `packing`).

Memory: a step packs at most `max_tokens` positions per forward and runs the rest in
further passes. When the accelerator runs out of memory mid-pass the pass is split in
two and the cap lowered to what fitted, which every row is told; a single row that
does not fit fails with the out-of-memory error, for the runtime's CPU fallback (`residency`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import nn

from ...cancel import CancelToken
from ...errors import DiffusionError, GenerationCancelled
from ..devices import free_accelerator_memory, is_out_of_memory
from ..packing import Packing, Segment
from ..samplers.base import Forward, Program, SamplerStep
from .engine_thread import on_engine_thread
from .status import Status


@dataclass(eq=False)
class BatchRow:
    """One request in a batch: its program, what it asked for next, and what it produced so far."""

    program: Program
    cancel: CancelToken | None
    tokens: int = 0
    pending: Forward | None = None
    outbox: deque[SamplerStep | Status] = field(default_factory=deque)
    error: Exception | None = None
    done: bool = False
    steps: int = 0

    def take(self) -> list[SamplerStep | Status]:
        """The steps (and the batch's statuses) produced since the last call."""
        taken = list(self.outbox)
        self.outbox.clear()
        return taken


class DecodingBatch:
    """Rows decoded together on one network (not thread-safe: one thread steps it at a time)."""

    def __init__(self, network: nn.Module, max_tokens: int | None = None) -> None:
        self.network = network
        self.max_tokens = max_tokens
        self.rows: list[BatchRow] = []
        #: a pass of one row did not fit the device: every row failed with out of memory
        self.exhausted = False

    @property
    def tokens(self) -> int:
        """Positions the rows' canvases hold (what the next full passes will pack)."""
        return sum(row.tokens for row in self.rows)

    def add(self, program: Program, cancel: CancelToken | None = None, tokens: int = 0) -> BatchRow:
        """A new row from the next step; `tokens` is its canvas size, for the budget."""
        return self.admit(BatchRow(program, cancel, tokens))

    def admit(self, row: BatchRow) -> BatchRow:
        """Make a new row take part from the next step (between steps only).

        Its program starts at that step, on the thread that steps: it checks its arguments
        (a row it refuses is done with the error) and asks for its first pass, which that
        step runs. So a row joins without waiting for a pass in flight.
        """
        self.rows.append(row)
        return row

    def drop(self, row: BatchRow) -> None:
        """Take a row out whose caller stopped listening."""
        if row in self.rows:
            self.rows.remove(row)
            if not row.done:
                self._fail(row, GenerationCancelled(row.steps + 1))

    @torch.no_grad()
    def step(self) -> None:
        """One pass for every row: new rows start, cancelled rows leave, finished and failed rows after.

        Never records gradients.
        """
        for row in self.rows:
            if row.pending is None:  # added since the last step
                self._advance(row, None)
        for row in self.rows:
            if row.cancel is not None and not row.done:
                try:
                    row.cancel.raise_if_cancelled(row.steps + 1)
                except (GenerationCancelled, DiffusionError) as exc:  # cancelled, or past its deadline
                    self._fail(row, exc)
        live = [row for row in self.rows if not row.done]
        forwards = [row.pending for row in live]
        assert all(forwards), "a live row always has its next pass pending"
        results = self._forward(cast(list[Forward], forwards))
        too_big = next((r for r in results if isinstance(r, Exception)), None)
        self.exhausted = self.exhausted or too_big is not None
        for row, logits in zip(live, results, strict=True):
            if too_big is not None:
                # a device that cannot hold one row's pass holds no batch: every row falls back together
                self._fail(row, too_big)
            else:
                self._advance(row, cast(torch.Tensor, logits))
        self.rows = [row for row in self.rows if not row.done]

    # -- internals ----------------------------------------------------------------

    def _advance(self, row: BatchRow, logits: torch.Tensor | None) -> None:
        """Give the program its logits; keep the step it makes and its next request."""
        try:
            if logits is not None:
                made = row.program.send(logits)
                assert isinstance(made, SamplerStep), "a program answers logits with a SamplerStep"
                row.outbox.append(made)
                row.steps += 1
            wanted = next(row.program)
            assert isinstance(wanted, Forward), "a program asks for a Forward between steps"
            row.pending = wanted
        except StopIteration:
            row.done = True
        except Exception as exc:  # noqa: BLE001 - a row's failure is its own; the other rows go on
            self._fail(row, exc)

    def _fail(self, row: BatchRow, exc: Exception) -> None:
        row.program.close()
        row.error, row.done = exc, True

    def _forward(self, forwards: list[Forward]) -> list[torch.Tensor | Exception]:
        """Logits for each forward, in as few passes as the token cap and the device allow."""
        results: list[torch.Tensor | Exception] = []
        group: list[Forward] = []
        for forward in forwards:
            if group and self.max_tokens is not None and sum(f.tokens for f in group) + forward.tokens > self.max_tokens:
                results += self._fitting(group)
                group = []
            group.append(forward)
        if group:
            results += self._fitting(group)
        return results

    def _fitting(self, group: list[Forward]) -> list[torch.Tensor | Exception]:
        """`group` in one pass, or halved (and the cap lowered) while the device runs out of memory."""
        filling = [f.cache for f in group if f.cache is not None and not f.cache.keys]
        try:
            return list[torch.Tensor | Exception](self._pass(group))
        except Exception as exc:  # torch raises plain runtime errors for out of memory
            device = group[0].ids.device
            if not is_out_of_memory(exc):
                raise
            for cache in filling:  # the layers it filled before it failed
                cache.keys.clear()
                cache.values.clear()
            free_accelerator_memory(device)
            if len(group) == 1:
                return [exc]
        half = len(group) // 2
        fitted = sum(f.tokens for f in group[:half])
        if self.max_tokens is None or fitted < self.max_tokens:
            self.max_tokens = fitted
            for row in self.rows:
                row.outbox.append(Status(f"out of memory with {len(group)} requests in one pass on {device}; "
                                         f"passes now hold at most {fitted} tokens"))
        return self._fitting(group[:half]) + self._fitting(group[half:])

    def _pass(self, group: list[Forward]) -> list[torch.Tensor]:
        if not packs(self.network):
            return [self.network(f.ids, logits_at=f.logits_at, **f.inputs) for f in group]
        if len(group) == 1 and group[0].cache is None:
            return [self.network(group[0].ids, logits_at=group[0].logits_at)]
        packing = Packing([Segment(f.ids.shape[1], f.start, f.ids.shape[0], f.cache, f.logits_at) for f in group])
        ids = torch.cat([f.ids.reshape(1, -1) for f in group], dim=1)
        return packing.split(self.network(ids, packing=packing))


def packs(network: nn.Module) -> bool:
    """Whether `network` runs several rows' windows as one packed pass (our own networks do)."""
    return bool(getattr(network, "packs", True))


def run_alone(network: nn.Module, program: Program, cancel: CancelToken | None = None) -> Iterator[SamplerStep]:
    """The steps of one program on `network`: a batch of one row, the same code path as a shared batch."""
    batch = DecodingBatch(network)
    row = batch.add(program, cancel)
    while True:
        for item in row.take():
            assert isinstance(item, SamplerStep), "a batch of one row never splits its pass"
            yield item
        if row.error is not None:
            raise row.error
        if row.done:
            return
        on_engine_thread(batch.step)
