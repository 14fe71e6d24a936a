"""Reading the extension's answers in tests: JSON bodies and SSE frames, and a client that hangs up."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: Headers that replace jp_fetch's token: the request arrives unauthenticated.
TOKENLESS = {"Authorization": ""}


def sse_events(body: bytes) -> list[dict[str, Any]]:
    """The events of an SSE body, in order (keep-alive comments skipped)."""
    events = []
    for block in body.decode("utf-8").split("\n\n"):
        if block.startswith("data: "):
            events.append(json.loads(block[len("data: "):]))
        else:
            assert block == "" or block.startswith(":"), block
    return events


def as_json(response: Any) -> Any:
    return json.loads(response.body)


def check_steps(events: list[dict[str, Any]], last_step: int) -> list[dict[str, Any]]:
    """The step events of a stream that ends in `complete`, checked for what coalescing keeps exact.

    Steps queued while the client reads are merged into one frame, so their number may be
    smaller than the step count; their order, concatenated texts and last canvas are exact.
    """
    steps = [e for e in events if e["type"] == "step"]
    complete = events[-1]
    assert complete["type"] == "complete", complete
    numbers = [e["step"] for e in steps]
    assert numbers == sorted(set(numbers)) and numbers[-1] == last_step, numbers
    assert "".join(e["text"] for e in steps) == complete["raw_text"]
    assert steps[-1]["canvas"] == complete["history"][-1] and len(complete["history"]) == last_step
    return steps


async def hang_up_at_first_step(port: int, base_url: str, auth: dict[str, str], body: dict[str, Any],
                                correlation_id: str, first: Callable[[], Awaitable[None]] | None = None) -> None:
    """A raw streaming request whose client closes the connection at its first step frame (after `first()`)."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST {base_url}api/diffusion/generate/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Type: application/json\r\n"
            f"X-Correlation-ID: {correlation_id}\r\nContent-Length: {len(payload)}\r\n\r\n")
    writer.write(head.encode() + payload)
    await writer.drain()
    received = b""
    while b'"type":"step"' not in received:
        chunk = await reader.read(65536)
        assert chunk, received
        received += chunk
    if first is not None:
        await first()
    writer.close()


async def eventually(condition: Callable[[], Any], saw: Callable[[], Any], timeout: float = 120.0) -> None:
    """Wait, serving the event loop, until `condition()` holds; after `timeout` s fail with what `saw()` shows."""
    until = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < until, f"not within {timeout:g} s; saw {saw()!r}"
        await asyncio.sleep(0.01)
