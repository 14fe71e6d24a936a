"""The one way a live generation runs: events from one worker thread, fed to its state on this thread.

A kernel interrupt raises `KeyboardInterrupt` in the main thread only, and ipykernel 7
only routes display messages sent from the main thread to the running cell. So the
event source runs in a worker thread that feeds one queue, and the thread that called
`drive` (the cell's main thread, a panel's background job, the CLI) feeds the state, whose
observers draw. On interrupt it cancels the worker, waits for it (one denoising step at
most) and records where it stopped; a Stop that cancels the token from elsewhere ends
the same way.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from ...cancel import CancelToken
from ...errors import GenerationCancelled
from ...service.events import Event
from .state import LiveGeneration
from .throttle import UPDATE_INTERVAL

#: A generation's events for a cancel token: what a backend's `generate_events` / `infill_events` gives.
EventSource = Callable[[CancelToken], Iterator[Event]]


class _End:
    """The worker's last queue item: how the source ended (None: it ran out)."""

    def __init__(self, failure: BaseException | None) -> None:
        self.failure = failure


def _pump(source: EventSource, cancel: CancelToken, out: queue.SimpleQueue[Event | _End]) -> None:
    """Worker: put every event of `source(cancel)` into `out`, then how the stream ended."""
    try:
        for event in source(cancel):
            out.put(event)
    except BaseException as failure:  # noqa: BLE001 - handed to the thread that drives
        out.put(_End(failure))
    else:
        out.put(_End(None))


def drive(source: EventSource, generation: LiveGeneration, cancel: CancelToken | None = None, *,
          tick: Callable[[], None] = lambda: None, interval: float = UPDATE_INTERVAL) -> None:
    """Run `source(cancel)` in one worker thread and feed its events to `generation` (already begun) here.

    `tick` runs whenever no event came for `interval` seconds (a renderer's held-back frame).
    A `KeyboardInterrupt` cancels the worker, waits for it, and ends the run as stopped.
    """
    cancel = CancelToken() if cancel is None else cancel
    events: queue.SimpleQueue[Event | _End] = queue.SimpleQueue()
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
        generation.finish(item.failure or GenerationCancelled(generation.step))
        return
    worker.join()
    generation.finish(item.failure)


def _next(events: queue.SimpleQueue[Event | _End], interval: float, tick: Callable[[], None]) -> Event | _End:
    while True:
        try:
            return events.get(timeout=interval)
        except queue.Empty:
            tick()
