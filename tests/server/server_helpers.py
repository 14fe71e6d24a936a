"""Reading the extension's answers in tests: JSON bodies and SSE frames."""

from __future__ import annotations

import json
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
