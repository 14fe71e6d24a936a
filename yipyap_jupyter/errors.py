"""The one exception hierarchy of yipyap-jupyter.

Every failure a user can meet is one of these. Each class carries the category
(`error_type`) and whether retrying may help (`retryable`), the fields of the
error object that HTTP bodies, SSE `error` frames and widgets all show. Messages
never contain a prompt, prefix or suffix.
"""

from __future__ import annotations

from typing import Any


class DiffusionError(Exception):
    """Base class: a categorised, user-facing failure."""

    error_type: str = "generation"
    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable


class ValidationError(DiffusionError, ValueError):
    """Bad input: unknown field, out-of-range value, empty prompt, bad device."""

    error_type = "validation"
    retryable = False


class AuthenticationError(DiffusionError, PermissionError):
    """The request carries no valid credentials (Jupyter token or login cookie with its XSRF value)."""

    error_type = "auth"
    retryable = False


class ModelUnavailableError(DiffusionError, LookupError):
    """Unknown model id or weights not in the cache."""

    error_type = "model_unavailable"
    retryable = False


class NoModelLoadedError(ModelUnavailableError):
    """A request needs a loaded model and none is."""


class ModelLoadingError(DiffusionError, RuntimeError):
    """Weights corrupt or incompatible, or the device unusable."""

    error_type = "model_loading"
    retryable = False


class GenerationTimeoutError(DiffusionError, TimeoutError):
    """The request's timeout passed before the generation finished."""

    error_type = "timeout"
    retryable = True


class GenerationError(DiffusionError, RuntimeError):
    """The model failed mid-run (retryable only where the cause is passing, e.g. out of memory)."""

    error_type = "generation"
    retryable = False


class GenerationCancelled(Exception):
    """The caller cancelled (client disconnect, Stop button, kernel interrupt).

    Not a `DiffusionError`: nobody is left to show it to as a failure.
    """

    def __init__(self, step: int = 0) -> None:
        super().__init__(f"generation cancelled at step {step}")
        self.step = step


class NetworkError(DiffusionError, ConnectionError):
    """An upstream (proxy, server backend, download) is unreachable."""

    error_type = "network"
    retryable = True


class RateLimitedError(NetworkError):
    """Too many requests from one client; retry after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_body(error: BaseException) -> dict[str, Any]:
    """The one wire form of any failure: `{error_type, message, retryable}`, scrubbed.

    HTTP bodies, SSE `error` frames, the CLI and the kernel all show this. A failure that
    is not a `DiffusionError` is a bug: it becomes a `generation` error that points to
    the server log (by correlation id) instead of leaking its text.
    """
    from .service.correlation import correlation_id
    from .service.redaction import scrub

    if isinstance(error, DiffusionError):
        return {"error_type": error.error_type, "message": scrub(error.message), "retryable": error.retryable}
    return {
        "error_type": GenerationError.error_type,
        "message": f"the request failed unexpectedly; the server log has the details "
        f"(correlation id {correlation_id.get()})",
        "retryable": False,
    }
