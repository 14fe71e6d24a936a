"""Keep prompts, prefixes and suffixes out of every log record and error message.

Two nets: any field named `prompt`, `prefix` or `suffix` (at any depth of a dict,
list or the record's extra fields) becomes "[redacted N chars]"; and the current
request's own texts, registered with `register_sensitive`, are cut out of formatted
messages and tracebacks wherever they appear. At DEBUG, where message text tends
to carry generated text, the whole message is replaced.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable
from typing import Any

SENSITIVE_FIELDS = frozenset({"prompt", "prefix", "suffix"})

#: Texts of the current request that must never be written anywhere.
_sensitive: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("yipyap_sensitive", default=())

#: Texts shorter than this are not searched for (they would blank out ordinary words).
MIN_SCRUB_CHARS = 4

_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def placeholder(value: Any) -> str:
    return f"[redacted {len(value) if isinstance(value, str) else len(str(value))} chars]"


def register_sensitive(texts: Iterable[str]) -> None:
    """Add the request's texts to those scrubbed in the current context.

    Call it inside a context of the request's own (`contextvars.copy_context().run`, or a
    thread started with `correlation.in_current_context`): the value is never reset, so it
    must not leak into a context other requests share.
    """
    kept = {t for t in texts if isinstance(t, str) and len(t) >= MIN_SCRUB_CHARS}
    if kept:
        merged = set(_sensitive.get()) | kept
        _sensitive.set(tuple(sorted(merged, key=len, reverse=True)))


def scrub(text: str) -> str:
    """`text` with every registered sensitive text replaced by its placeholder."""
    for secret in _sensitive.get():
        if secret in text:
            text = text.replace(secret, placeholder(secret))
    return text


def redact(value: Any) -> Any:
    """A copy of `value` with sensitive fields at any depth replaced and registered texts scrubbed."""
    if isinstance(value, dict):
        return {k: placeholder(v) if k in SENSITIVE_FIELDS else redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return scrub(value)
    if hasattr(value, "model_dump"):
        return redact(value.model_dump())
    return value


class RedactionFilter(logging.Filter):
    """Rewrite a record in place so no handler, ours or anyone's, sees a sensitive text."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "yipyap_redacted", False):
            return True
        for key in set(record.__dict__) - _STANDARD_ATTRIBUTES:
            value = record.__dict__[key]
            record.__dict__[key] = placeholder(value) if key in SENSITIVE_FIELDS else redact(value)
        if isinstance(record.msg, dict):
            record.msg = str(redact(record.msg))
        if isinstance(record.args, dict):
            record.args = redact(record.args)
        elif record.args:
            record.args = tuple(redact(a) for a in record.args)
        message = scrub(record.getMessage())
        record.msg = placeholder(message) if record.levelno <= logging.DEBUG else message
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(self._formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        record.yipyap_redacted = True
        return True
