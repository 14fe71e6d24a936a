"""One live generation: the service's events folded into observable state, and the cell that draws it.

`LiveGeneration` is the one piece of code that turns events into state (step,
canvas, rate, status, the result or the error); the `%%diffuse` cell display,
the generator and infiller panels and the CLI are renderers that observe its
traits.

A kernel interrupt raises `KeyboardInterrupt` in the main thread only, and
ipykernel 7 only routes display messages sent from the main thread to the
running cell. So `drive` runs the event source in one worker thread that feeds
one queue; the main thread feeds the live generation (its observers draw), and
on interrupt cancels the worker, waits for it (one denoising step at most) and
records where it stopped. A stopped run raises `GenerationStopped`, which the
magics show as one line.

The cell display starts empty (nbval compares nothing in it) and gives way to
the result, the cell's value: nbval ignores in-place updates, so a display that
changed in place would never match the stored notebook.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from traitlets import Any as AnyTrait
from traitlets import Enum, Float, HasTraits, Int, List, Unicode

from ..cancel import CancelToken
from ..errors import DiffusionError, GenerationCancelled, error_body
from .render import (
    Context,
    canvas_html,
    canvas_text,
    committed_count,
    error_line,
    progress_line,
    stopped_line,
)
from .result import DiffusionResult

#: Seconds between two redraws of a live view (about 10 per second, whatever the step rate).
UPDATE_INTERVAL = 0.1

EventSource = Callable[[CancelToken], Iterator[Any]]


class GenerationStopped(KeyboardInterrupt):
    """A generation the user stopped (kernel interrupt, Stop, Ctrl+C); `result` holds what it had settled.

    A `KeyboardInterrupt`, so `except Exception` in user code does not swallow an interrupt.
    """

    def __init__(self, result: DiffusionResult) -> None:
        super().__init__(stopped_line(result.steps, result.stopped_of or 0))
        self.result = result


def as_diffusion_error(error: BaseException) -> DiffusionError:
    """Any failure as a categorised error: `error_body` maps a bug to a `generation` error without its text."""
    from ..service.events import ErrorEvent

    return error if isinstance(error, DiffusionError) else ErrorEvent(**error_body(error)).to_error()


class Throttle:
    """Lets an action through at most once per `interval` of `clock` time."""

    def __init__(self, interval: float = UPDATE_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """True (and restarts the interval) when `interval` has passed since the last True."""
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False


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
        self.frames: list[Any] = []
        self._complete: Any = None
        self._error_event: Any = None
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

    def feed(self, event: Any) -> None:
        """Take one event of the service's stream."""
        if event.type == "status":
            if event.restart:  # the run starts over: its steps so far are abandoned
                with self.hold_trait_notifications():
                    self.frames = []
                    self.step, self.progress = 0, 0.0
                    self.pieces, self.states, self.changed, self.committed = [], [], [], 0
            self._status_late = bool(self.frames) or event.restart
            self.status = event.message
            self.model = event.model or self.model
        elif event.type == "step":
            now = self.clock()
            if not self.frames:
                self._first_step = now
            self.frames.append(event)
            with self.hold_trait_notifications():
                self.pieces, self.states, self.changed = list(event.pieces), list(event.states), list(event.changed)
                self.committed = committed_count(event.pieces, event.states)
                self.total_steps, self.progress, self.step = event.total_steps, event.progress, event.step
        elif event.type == "complete":
            self._complete = event
        else:
            self._error_event = event

    def consume(self, source: EventSource, cancel: CancelToken) -> None:
        """Feed every event of `source(cancel)` on this thread, then end (what a panel's worker does)."""
        try:
            for event in source(cancel):
                self.feed(event)
        except Exception as error:  # noqa: BLE001 - a failure, a cancel or a bug: each ends the run as its category
            self.finish(error)
        else:
            self.finish(None)

    def finish(self, error: BaseException | None) -> None:
        """End the run: with the stream's result, as stopped (cancel, or a stream that ended early), or failed."""
        if error is None and self._error_event is not None:
            self.error = self._error_event.to_error()
        elif error is None and self._complete is not None:
            self.result = self._finished(self._complete)
        elif error is None or isinstance(error, GenerationCancelled):
            self.result = self._partial()
        else:
            self.error = as_diffusion_error(error)
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

    def _finished(self, complete: Any) -> DiffusionResult:
        return DiffusionResult(
            text=complete.text, raw_text=complete.raw_text, history=list(complete.history),
            generation_time=complete.generation_time, model=complete.model_used, device=complete.device,
            tokens=complete.tokens, steps=complete.steps, context=self.context, frames=list(self.frames),
            options=dict(getattr(complete, "options", {}) or {}), block_origin=getattr(complete, "block_origin", 0),
        )

    def _partial(self) -> DiffusionResult:
        settled = "".join(frame.text for frame in self.frames)
        return DiffusionResult(
            text=settled, raw_text=settled, history=[frame.canvas for frame in self.frames],
            generation_time=round(self.clock() - self._began, 4), model=self.model, device="",
            tokens=self.committed, steps=self.step, context=self.context, frames=list(self.frames),
            stopped_of=self.total_steps,
        )


def in_kernel() -> bool:
    """Whether we run in a Jupyter kernel (where displays update in place), not a terminal."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def live_bundle(generation: LiveGeneration, footer: str | None = None) -> dict[str, str]:
    """The display data (HTML + plain text) of a generation now; `footer` defaults to its status line."""
    footer = generation.line if footer is None else footer
    if not generation.frames:
        return {"text/html": canvas_html(generation.context, [], [], footer), "text/plain": footer}
    return {"text/html": canvas_html(generation.context, generation.pieces, generation.changed, footer,
                                     generation.states),
            "text/plain": canvas_text(generation.pieces, footer, generation.states)}


class CellDisplay:
    """Draws a `LiveGeneration` into one display of the running cell; every call on the main thread.

    Steps are redrawn at most once per interval (`tick` draws one held back); the last
    step is always drawn, then the display gives way to the result, or to the error
    output (one place for an error); a stopped run keeps its partial canvas.
    """

    def __init__(self, generation: LiveGeneration, interval: float = UPDATE_INTERVAL) -> None:
        from IPython.display import display

        self.generation = generation
        self.throttle = Throttle(interval)
        self.dirty = False
        self.handle = display({}, raw=True, display_id=True)
        generation.observe(self._stepped, names="step")
        generation.observe(self._status, names="status")
        generation.observe(self._ended, names="state")

    def tick(self) -> None:
        """Draw a step the throttle held back, once its interval has passed."""
        if self.dirty and self.throttle.ready():
            self._draw()

    def _draw(self, footer: str | None = None) -> None:
        self.handle.update(live_bundle(self.generation, footer), raw=True)
        self.dirty = False

    def _stepped(self, _change: dict[str, Any]) -> None:
        self.dirty = True
        self.tick()

    def _status(self, _change: dict[str, Any]) -> None:
        if self.generation.state == "running":
            self._draw()  # rare and always worth showing

    def _ended(self, change: dict[str, Any]) -> None:
        from IPython.display import clear_output

        generation = self.generation
        if change["new"] == "stopped":
            self._draw(footer="")  # the partial canvas; the stop line is the cell's error output
        elif change["new"] == "done":
            self._draw()  # the last canvas, always: the result continues the prompt exactly as it shows
            self.handle.update({"text/html": generation.result._repr_html_(), "text/plain": repr(generation.result)},
                               raw=True)
            clear_output(wait=True)  # the result (the cell's value) replaces the live display
        elif change["new"] == "failed":
            clear_output(wait=True)  # the error output replaces it: an error is shown once


class _End:
    """The worker's last queue item: how the source ended (None: it ran out)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


def _pump(source: EventSource, cancel: CancelToken, out: queue.SimpleQueue[Any]) -> None:
    """Worker: put every event of `source(cancel)` into `out`, then how the stream ended."""
    try:
        for event in source(cancel):
            out.put(event)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread
        out.put(_End(error))
    else:
        out.put(_End(None))


def drive(source: EventSource, generation: LiveGeneration, context: Context,
          tick: Callable[[], None] = lambda: None, interval: float = UPDATE_INTERVAL) -> None:
    """Run `source(cancel)` in one worker thread and feed its events to `generation` on this thread.

    `tick` runs whenever no event came for `interval` seconds (a renderer's held-back frame).
    A `KeyboardInterrupt` cancels the worker, waits for it, and ends the run as stopped.
    """
    cancel = CancelToken()
    events: queue.SimpleQueue[Any] = queue.SimpleQueue()
    generation.begin(context)
    worker = threading.Thread(target=_pump, args=(source, cancel, events), name="yipyap-generation", daemon=True)
    worker.start()
    try:
        while not isinstance(item := _next(events, interval, tick), _End):
            generation.feed(item)
    except KeyboardInterrupt:
        cancel.cancel()
        worker.join()
        while not isinstance(item := events.get(), _End):
            generation.feed(item)
        generation.finish(item.error or GenerationCancelled(generation.step))
        return
    worker.join()
    generation.finish(item.error)


def _next(events: queue.SimpleQueue[Any], interval: float, tick: Callable[[], None]) -> Any:
    while True:
        try:
            return events.get(timeout=interval)
        except queue.Empty:
            tick()


def run_live(source: EventSource, context: Context, *, live: bool = True,
             interval: float = UPDATE_INTERVAL) -> DiffusionResult:
    """Run a generation, drawing it in the running cell when `live` and in a kernel; return its result.

    Raises the failure's `DiffusionError`, or `GenerationStopped` (with the partial
    result) when the kernel was interrupted.
    """
    generation = LiveGeneration()
    cell = CellDisplay(generation, interval) if live and in_kernel() else None
    drive(source, generation, context, cell.tick if cell is not None else lambda: None, interval)
    return generation.outcome()
