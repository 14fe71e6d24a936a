"""Where a request stands before or around its steps, as one typed message from the runtime to the service."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    """Where a request stands: queued, loading, fell back to CPU, a batch's pass split.

    `restart`: the steps so far are abandoned and the request starts over from its first step.
    """

    message: str
    restart: bool = False


StatusCallback = Callable[[Status], None]


def quiet(status: Status) -> None:
    """The `on_status` of callers that did not ask for status messages."""
