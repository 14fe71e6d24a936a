"""Run a generation in a worker thread and show it live in the running cell.

A kernel interrupt raises `KeyboardInterrupt` in the main thread only, and
ipykernel 7 only routes display messages sent from the main thread to the
running cell. So the model works in a worker thread that feeds a queue; the
main thread polls the queue, redraws one display in place at most every
`UPDATE_INTERVAL` seconds, and on interrupt cancels the worker, waits for it
(one denoising step at most), shows where it stopped, and re-raises.

The live display starts and ends empty and the result is the cell's value:
nbval ignores in-place updates, so a display that changed in place would never
match the stored notebook.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..cancel import CancelToken
from ..constants import MASK_GLYPH
from ..errors import DiffusionError, GenerationCancelled
from .render import (
    Context,
    canvas_html,
    canvas_text,
    error_line,
    footer_html,
    progress_line,
)
from .result import DiffusionResult, ResultBuilder

#: Seconds between two redraws of a live display (about 10 per second, whatever the step rate).
UPDATE_INTERVAL = 0.1

EventSource = Callable[[CancelToken], Iterator[Any]]

_DONE = object()


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


def in_kernel() -> bool:
    """Whether we run in a Jupyter kernel (where displays update in place), not a terminal."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def live_bundle(builder: ResultBuilder, started: float, note: str = "", error: bool = False) -> dict[str, str]:
    """The display data (HTML + plain text) of the current state of a generation."""
    frame = builder.last_frame
    if frame is None:
        message = note or builder.status or "starting…"
        return {"text/html": footer_html(message, error=error), "text/plain": message}
    committed = sum(1 for piece in frame.pieces if piece != MASK_GLYPH)
    footer = progress_line(frame.step, frame.total_steps, committed, time.monotonic() - started)
    if note:
        footer = f"{footer} · {note}"
    html = canvas_html(builder.context, frame.pieces, frame.changed)
    return {"text/html": html + footer_html(footer, error=error), "text/plain": canvas_text(frame.pieces, footer)}


def _pump(source: EventSource, cancel: CancelToken, out: queue.Queue) -> None:
    """Worker: feed every event (or the exception that ended the stream) into `out`, then `_DONE`."""
    try:
        for event in source(cancel):
            out.put(event)
    except BaseException as error:  # handed to the main thread, which re-raises it
        out.put(error)
    finally:
        out.put(_DONE)


def run_live(source: EventSource, context: Context, *, live: bool = True, interval: float = UPDATE_INTERVAL) -> DiffusionResult:
    """Consume `source(cancel)` in a worker thread, drawing it live when `live` and in a kernel.

    Returns the result; raises the stream's `DiffusionError`, or `KeyboardInterrupt` after
    cancelling the worker when the kernel is interrupted.
    """
    from IPython.display import display

    draw = live and in_kernel()
    builder = ResultBuilder(context)
    cancel = CancelToken()
    events: queue.Queue = queue.Queue()
    worker = threading.Thread(target=_pump, args=(source, cancel, events), name="yipyap-generation", daemon=True)
    throttle = Throttle(interval)
    started = time.monotonic()
    handle = display({"text/plain": ""}, raw=True, display_id=True) if draw else None
    failure: BaseException | None = None
    dirty = False
    worker.start()
    try:
        while True:
            try:
                item = events.get(timeout=interval)
            except queue.Empty:
                item = None
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                failure = item
            elif item is not None:
                builder.feed(item)
                dirty = True
            # Status lines are rare and always shown; step frames are throttled (the first always passes).
            if handle is not None and dirty and (getattr(item, "type", None) == "status" or throttle.ready()):
                handle.update(live_bundle(builder, started), raw=True)
                dirty = False
    except KeyboardInterrupt:
        cancel.cancel()
        worker.join()
        if handle is not None:
            step = builder.last_frame.step if builder.last_frame else 0
            handle.update(live_bundle(builder, started, _describe(GenerationCancelled(step)), error=True), raw=True)
        raise
    try:
        if failure is not None:
            raise failure
        result = builder.result()
    except (DiffusionError, GenerationCancelled) as error:
        if handle is not None:
            handle.update(live_bundle(builder, started, _describe(error), error=True), raw=True)
        raise
    if handle is not None:
        handle.update({"text/plain": ""}, raw=True)
    return result


def _describe(error: DiffusionError | GenerationCancelled) -> str:
    if isinstance(error, GenerationCancelled):
        return f"cancelled at step {error.step}"
    return error_line(error.error_type, error.message, error.retryable)
