"""Server-Sent Events over Tornado: one flushed `data:` frame per event, keep-alive comments between.

The event iterator runs on an executor thread and hands events to the IOLoop
through an asyncio queue, so the loop never waits on torch. A client that goes
away cancels the generation (the engine checks the token every step) and the
stream waits for the worker before it ends, so no work outlives its request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from ..cancel import CancelToken
from ..errors import GenerationCancelled, GenerationError
from ..service.correlation import correlation_id, in_current_context
from ..service.events import CompleteEvent, ErrorEvent
from ..service.logs import get_logger

log = get_logger(__name__)

CONTENT_TYPE = "text/event-stream; charset=utf-8"
KEEPALIVE_FRAME = ": keep-alive\n\n"

_END = object()
_CANCELLED = object()


def frame(event: Any) -> str:
    """One SSE frame: `data: <json>` and a blank line."""
    return f"data: {json.dumps(event.model_dump(), ensure_ascii=False)}\n\n"


@dataclass
class StreamOutcome:
    """How a stream ended, for the log and the metrics DB."""

    frames: int = 0
    end: str = "disconnected"  # complete | error | cancelled | disconnected
    error_type: str | None = None
    model: str | None = None


class EventStream:
    """Send one generation's events to one client; `cancel()` is the client-went-away hook."""

    def __init__(self, handler: RequestHandler, executor: Executor, keepalive_seconds: float) -> None:
        self.handler = handler
        self.executor = executor
        self.keepalive_seconds = keepalive_seconds
        self.cancel_token = CancelToken()
        self.outcome = StreamOutcome()

    @property
    def closed(self) -> bool:
        return self.cancel_token.cancelled

    def cancel(self) -> None:
        self.cancel_token.cancel()

    async def run(self, events: Callable[[CancelToken], Iterator[Any]]) -> StreamOutcome:
        """Stream `events(token)` until it ends or the client leaves."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()

        def post(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the loop is gone (server shutting down): nobody to tell
                pass

        def work() -> None:
            try:
                for event in events(self.cancel_token):
                    post(event)
            except GenerationCancelled:
                post(_CANCELLED)
            except Exception as error:  # the service maps its own failures; this is a last resort
                log.exception("event stream failed (%s)", type(error).__name__)
                post(ErrorEvent.from_error(GenerationError(
                    f"the stream failed unexpectedly; the server log has the details (correlation id {correlation_id.get()})"
                )))
            finally:
                post(_END)

        handler = self.handler
        handler.set_header("Content-Type", CONTENT_TYPE)
        handler.set_header("Cache-Control", "no-cache, no-store")
        handler.set_header("X-Accel-Buffering", "no")
        worker = loop.run_in_executor(self.executor, in_current_context(work))
        try:
            await self._send("")  # headers now, so the client knows the stream is open
            while True:
                try:
                    item = await asyncio.wait_for(items.get(), timeout=self.keepalive_seconds)
                except asyncio.TimeoutError:
                    await self._send(KEEPALIVE_FRAME)
                    continue
                if item is _END:
                    break
                if item is _CANCELLED:
                    self.outcome.end = "cancelled"
                    continue
                self._note(item)
                await self._send(frame(item))
        finally:
            if self.outcome.end not in ("complete", "error"):
                self.cancel_token.cancel()
            await worker
        return self.outcome

    def _note(self, event: Any) -> None:
        self.outcome.frames += 1
        if isinstance(event, CompleteEvent):
            self.outcome.end, self.outcome.model = "complete", event.model_used
        elif isinstance(event, ErrorEvent):
            self.outcome.end, self.outcome.error_type = "error", event.error_type

    async def _send(self, text: str) -> None:
        if self.closed:
            return
        if text:
            self.handler.write(text)
        try:
            await self.handler.flush()
        except StreamClosedError:
            self.cancel()
