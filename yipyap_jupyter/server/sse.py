"""Server-Sent Events over Tornado: one `data:` frame per event, keep-alive comments between.

The event iterator runs on an executor thread and hands events to the IOLoop
through a mailbox (`_Mailbox`), so the loop never waits on torch. The response starts
with the first event: a request refused before it (an `error` first) is answered
as that error's HTTP status instead of a stream. Events that queue up while the
client reads are written together, their step events merged into one (`coalesce`).
Steps that come within `frame_interval` of the last write wait for the next one and
go out together, each still its own frame: one wake-up of the client (and of the
server's loop) per write, not per step, which is most of what a stream costs on a
small machine; any other event (complete, error, status) ends the wait.
A client that goes away cancels the generation (the engine checks the token every
step) and the stream waits for the worker before it ends, so no work outlives its request.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import Executor
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from ..cancel import CancelToken
from ..errors import DiffusionError, GenerationCancelled
from ..service.correlation import in_current_context
from ..service.events import CompleteEvent, ErrorEvent, StepEvent
from ..service.logs import get_logger

log = get_logger(__name__)

CONTENT_TYPE = "text/event-stream; charset=utf-8"
KEEPALIVE_FRAME = ": keep-alive\n\n"
#: Seconds from one write of step frames to the next: steps that come faster go out together, each its own frame.
DEFAULT_FRAME_INTERVAL = 0.05

_END = object()
#: In a batch of `event_batches`: the generation was cancelled (its consumer went away).
CANCELLED = object()


def frame(event: Any) -> str:
    """One SSE frame: `data: <json>` and a blank line (the event serialised once, by pydantic)."""
    return f"data: {event.model_dump_json()}\n\n"


def coalesce(events: list[Any]) -> list[Any]:
    """Merge each run of consecutive step events into one: texts concatenated, the last canvas.

    The concatenated step texts and the last canvas stay what the client would have got
    frame by frame; a restart from step 1 (after out-of-memory) follows a status event,
    so no run spans two attempts.
    """
    merged: list[Any] = []
    for event in events:
        previous = merged[-1] if merged else None
        if isinstance(event, StepEvent) and isinstance(previous, StepEvent):
            merged[-1] = event.model_copy(update={
                "text": previous.text + event.text,
                "changed": sorted({*previous.changed, *event.changed}),
            })
        else:
            merged.append(event)
    return merged


@dataclass
class StreamOutcome:
    """How a stream ended, for the log and the metrics DB."""

    frames: int = 0
    end: str = "disconnected"  # complete | error | cancelled | disconnected
    error_type: str | None = None
    model: str | None = None


class EventStream:
    """Send one generation's events to one client; `cancel()` is the client-went-away hook."""

    def __init__(
        self, handler: RequestHandler, executor: Executor, keepalive_seconds: float, frame_interval: float = 0.0,
    ) -> None:
        self.handler = handler
        self.executor = executor
        self.keepalive_seconds = keepalive_seconds
        self.frame_interval = frame_interval
        self.cancel_token = CancelToken()
        self.outcome = StreamOutcome()
        self.opened = False

    @property
    def closed(self) -> bool:
        return self.cancel_token.cancelled

    def cancel(self) -> None:
        self.cancel_token.cancel()

    async def run(self, events: Callable[[CancelToken], Iterator[Any]]) -> StreamOutcome:
        """Stream `events(token)` until it ends or the client leaves.

        Raises:
            DiffusionError: the first event was an error, so no response has started.
        """
        loop = asyncio.get_running_loop()
        handler = self.handler
        handler.set_header("Content-Type", CONTENT_TYPE)
        handler.set_header("Cache-Control", "no-cache, no-store")
        handler.set_header("X-Accel-Buffering", "no")
        refusal: ErrorEvent | None = None
        slow = True  # the last write took longer than a frame interval (or none went yet): merge what queued
        batches = event_batches(events, self.cancel_token, self.executor, self.keepalive_seconds, self.frame_interval)
        async with aclosing(batches):
            async for batch in batches:
                if not batch:
                    await self._send(KEEPALIVE_FRAME)
                    continue
                if not self.opened and isinstance(batch[0], ErrorEvent):
                    refusal = batch[0]
                    break
                if CANCELLED in batch:
                    self.outcome.end = "cancelled"
                frames = [item for item in batch if item is not CANCELLED]
                if slow:
                    frames = coalesce(frames)
                for event in frames:
                    self._note(event)
                if frames:
                    started = loop.time()
                    await self._send("".join(frame(event) for event in frames))
                    slow = loop.time() - started > self.frame_interval
        if refusal is not None:
            raise refusal.to_error()
        return self.outcome

    def _note(self, event: Any) -> None:
        self.outcome.frames += 1
        if isinstance(event, CompleteEvent):
            self.outcome.end, self.outcome.model = "complete", event.model_used
        elif isinstance(event, ErrorEvent):
            self.outcome.end, self.outcome.error_type = "error", event.error_type

    async def _send(self, text: str) -> None:
        """Write and flush (the first call sends the headers too); a closed connection cancels."""
        if self.closed:
            return
        self.opened = True
        self.handler.write(text)
        try:
            await self.handler.flush()
        except StreamClosedError:
            self.cancel()


async def event_batches(
    events: Callable[[CancelToken], Iterator[Any]], cancel_token: CancelToken, executor: Executor,
    keepalive_seconds: float, frame_interval: float = 0.0,
) -> AsyncGenerator[list[Any], None]:
    """The events of `events(cancel_token)`, run on `executor`, in the batches due for one write each.

    An empty batch means `keepalive_seconds` of silence. A batch holding steps is due at most
    every `frame_interval`; any other event makes it due at once. Failures come as an
    `ErrorEvent` (the service maps its own; anything else is a last resort), a cancelled
    generation as `CANCELLED`. Iterate it inside `contextlib.aclosing`: leaving early
    cancels the token, and closing waits for the worker, so no work outlives its consumer.
    """
    loop = asyncio.get_running_loop()
    mailbox = _Mailbox(loop, frame_interval)

    def work() -> None:
        try:
            for event in events(cancel_token):
                mailbox.post(event)
        except GenerationCancelled:
            mailbox.post(CANCELLED)
        except Exception as error:  # the service maps its own failures; this is a last resort
            if not isinstance(error, DiffusionError):
                log.exception("event stream failed (%s)", type(error).__name__)
            mailbox.post(ErrorEvent.from_error(error))
        finally:
            mailbox.post(_END)

    worker = loop.run_in_executor(executor, in_current_context(work))
    ended = False
    try:
        while not ended:
            batch = await mailbox.take(keepalive_seconds)
            ended = _END in batch
            items = [item for item in batch if item is not _END]
            if items or not ended:
                if any(isinstance(item, StepEvent) for item in items):
                    mailbox.wrote_steps()
                yield items
    finally:
        if not ended:
            cancel_token.cancel()
        await worker


class _Mailbox:
    """Events from the worker thread to the IOLoop, which the worker wakes only when a write is due.

    A step that comes within `interval` of the last write of steps waits (the loop reads it
    when the interval is up); any other event wakes the loop at once. So a stream costs the
    loop one wake-up per write, not one per step.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = loop
        self._interval = interval
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._due = -math.inf  # loop time from which a step is worth a write
        self._waiter: asyncio.Future[None] | None = None

    def post(self, item: Any) -> None:
        """Worker side: hand over `item`, waking the loop if it waits and the item is due."""
        with self._lock:
            self._items.append(item)
            waiter = self._waiter
            if waiter is None or (isinstance(item, StepEvent) and self._loop.time() < self._due):
                return
            self._waiter = None
        try:
            self._loop.call_soon_threadsafe(_wake, waiter)
        except RuntimeError:  # the loop is gone (server shutting down): nobody to tell
            pass

    def wrote_steps(self) -> None:
        """Loop side: steps went out now; the next ones wait for the interval."""
        self._due = self._loop.time() + self._interval

    async def take(self, keepalive_seconds: float) -> list[Any]:
        """Loop side: the events due for a write, or [] after `keepalive_seconds` of silence."""
        silence = self._loop.time() + keepalive_seconds
        while True:
            with self._lock:
                now = self._loop.time()
                held = bool(self._items)
                if held and (now >= self._due or not all(isinstance(item, StepEvent) for item in self._items)):
                    items, self._items = self._items, []
                    return items
                if not held and now >= silence:
                    return []
                waiter = self._waiter = self._loop.create_future()
            try:
                await asyncio.wait_for(waiter, timeout=(self._due if held else silence) - now)
            except asyncio.TimeoutError:
                with self._lock:
                    self._waiter = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
