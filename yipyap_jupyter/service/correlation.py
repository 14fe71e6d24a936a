"""Correlation ids: one per request, in a contextvar so executor threads see it too.

Work handed to another thread must run inside `contextvars.copy_context().run`
(see `in_current_context`), otherwise its log records lose the id.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

HEADER = "X-Correlation-ID"

#: The current request's id; "-" outside any request.
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("yipyap_correlation_id", default="-")

_WELL_FORMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

ResultT = TypeVar("ResultT")


def choose_correlation_id(incoming: str | None) -> str:
    """A well-formed incoming id is kept (so a client can trace across hops); otherwise a new one."""
    if incoming and _WELL_FORMED.match(incoming):
        return incoming
    return uuid.uuid4().hex


def in_current_context(function: Callable[..., ResultT]) -> Callable[..., ResultT]:
    """`function` bound to a copy of the caller's context, for running in another thread."""
    context = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> ResultT:
        return context.run(function, *args, **kwargs)

    return run


class CorrelationFilter(logging.Filter):
    """Stamp every record with the current correlation id."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "correlation_id"):
            record.correlation_id = correlation_id.get()
        return True
