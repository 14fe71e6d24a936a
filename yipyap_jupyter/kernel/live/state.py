"""The state of one live generation: the service's events folded into traits that renderers observe.

`LiveGeneration` is the one piece of code that turns events into state (step, canvas,
rate, status, the result or the error); the `%%diffuse` cell, the generator and
infiller panels and the CLI only observe its traits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from traitlets import Any as AnyTrait
from traitlets import Enum, Float, HasTraits, Int, List, Unicode

from ...errors import GenerationCancelled, as_error
from ...service.events import CompleteEvent, ErrorEvent, Event, StatusEvent, StepEvent
from ..render import Context, committed_count, error_line, progress_line, stopped_line
from ..result import DiffusionResult


class GenerationStopped(KeyboardInterrupt):
    """A generation the user stopped (kernel interrupt, Stop, Ctrl+C); `result` holds what it had settled.

    A `KeyboardInterrupt`, so `except Exception` in user code does not swallow an interrupt.
    """

    def __init__(self, result: DiffusionResult) -> None:
        super().__init__(stopped_line(result.steps, result.stopped_of or 0))
        self.result = result


class LiveGeneration(HasTraits):
    """The state of one generation, from its events; renderers observe the traits.

    `state` goes idle -> running -> done | stopped | failed. While running, `status`
    is the latest status message (queued, loading, fell back to CPU), `step` /
    `total_steps` / `pieces` / `changed` the latest step and `committed` its unmasked
    positions; `line` says it in one line (tokens/s counts committed tokens since the first step).
    """

    state = Enum(("idle", "running", "done", "stopped", "failed"), default_value="idle")
    status = Unicode("")
    model = Unicode("")
    step = Int(0)
    total_steps = Int(0)
    progress = Float(0.0)
    pieces: List[str] = List()
    states: List[str] = List()
    changed: List[int] = List()
    committed = Int(0)
    result = AnyTrait(None, allow_none=True)
    error = AnyTrait(None, allow_none=True)

    def __init__(self, context: Context | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.context = context or Context()
        self.clock = clock
        self.frames: list[StepEvent] = []
        self._complete: CompleteEvent | None = None
        self._error_event: ErrorEvent | None = None
        self._began = self._first_step = 0.0
        self._status_late = False

    def begin(self, context: Context) -> None:
        """Start over for a new generation around `context`."""
        with self.hold_trait_notifications():
            self.context = context
            self.frames, self._complete, self._error_event, self._status_late = [], None, None, False
            self._began = self.clock()
            self.status, self.model, self.step, self.total_steps, self.progress = "", "", 0, 0, 0.0
            self.pieces, self.states, self.changed, self.committed = [], [], [], 0
            self.result = self.error = None
            self.state = "running"

    def feed(self, event: Event) -> None:
        """Take one event of the service's stream."""
        if isinstance(event, StatusEvent):
            if event.restart:  # the run starts over: its steps so far are abandoned
                with self.hold_trait_notifications():
                    self.frames = []
                    self.step, self.progress = 0, 0.0
                    self.pieces, self.states, self.changed, self.committed = [], [], [], 0
            self._status_late = bool(self.frames) or event.restart
            self.status = event.message
            self.model = event.model or self.model
        elif isinstance(event, StepEvent):
            now = self.clock()
            if not self.frames:
                self._first_step = now
            self.frames.append(event)
            with self.hold_trait_notifications():
                self.pieces, self.states, self.changed = list(event.pieces), list(event.states), list(event.changed)
                self.committed = committed_count(event.pieces, event.states)
                self.total_steps, self.progress, self.step = event.total_steps, event.progress, event.step
        elif isinstance(event, CompleteEvent):
            self._complete = event
        else:
            self._error_event = event

    def finish(self, failure: BaseException | None) -> None:
        """End the run: with the stream's result, as stopped (cancel, or a stream that ended early), or failed."""
        if failure is None and self._error_event is not None:
            self.error = self._error_event.to_error()
        elif failure is None and self._complete is not None:
            self.result = self._finished(self._complete)
        elif failure is None or isinstance(failure, GenerationCancelled):
            self.result = self._partial()
        else:
            self.error = as_error(failure)
        self.state = "failed" if self.error is not None else "stopped" if self.result.stopped_of is not None else "done"

    def outcome(self) -> DiffusionResult:
        """The result; raises the failure's `DiffusionError`, or `GenerationStopped` with the partial result."""
        if self.error is not None:
            raise self.error
        result: DiffusionResult = self.result
        if self.state == "stopped":
            raise GenerationStopped(result)
        return result

    @property
    def line(self) -> str:
        """The one status line of a live view: status, then `step k/N · x tok/s`, then how it ended."""
        if self.state == "done":
            return str(self.result.summary)
        if self.state == "stopped":
            return stopped_line(self.step, self.total_steps)
        if self.state == "failed":
            return error_line(self.error.error_type, self.error.message, self.error.retryable)
        if not self.frames:
            return self.status or "starting…"
        line = progress_line(self.step, self.total_steps, self.committed, self.clock() - self._first_step)
        # a status that came after the steps began (a fall back to CPU) stays in view
        return f"{line} · {self.status}" if self._status_late else line

    def _finished(self, complete: CompleteEvent) -> DiffusionResult:
        return DiffusionResult(
            text=complete.text, raw_text=complete.raw_text, history=list(complete.history),
            generation_time=complete.generation_time, model=complete.model_used, device=complete.device,
            tokens=complete.tokens, steps=complete.steps, context=self.context, frames=list(self.frames),
            options=dict(complete.options), block_origin=complete.block_origin,
        )

    def _partial(self) -> DiffusionResult:
        settled = "".join(frame.text for frame in self.frames)
        return DiffusionResult(
            text=settled, raw_text=settled, history=[frame.canvas for frame in self.frames],
            generation_time=round(self.clock() - self._began, 4), model=self.model, device="",
            tokens=self.committed, steps=self.step, context=self.context, frames=list(self.frames),
            stopped_of=self.total_steps,
        )
