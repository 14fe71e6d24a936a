"""The one exception hierarchy of yipyap-jupyter, and the one map between it and the wire.

Every failure a user can meet is one of these. Each class carries the category
(`error_type`) and whether retrying may help (`retryable`), the fields of the
error object that HTTP bodies, SSE `error` frames and widgets all show. Messages
never contain a prompt, prefix or suffix.

Going out, `wire_error` gives any failure its HTTP status, body and headers (`error_body`
alone is an SSE `error` frame's fields); coming back, `error_from_body` and
`error_from_answer` rebuild our exception from a body or an HTTP answer. Nothing else
holds a table between categories and statuses, so every front end answers alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple


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


class BodyTooLargeError(ValidationError):
    """The request body is over the size the API accepts (413)."""


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


#: The HTTP status of each error class; an error takes the entry of its nearest class, anything else 500.
_HTTP_STATUS: dict[type[BaseException], int] = {
    DiffusionError: 500,
    ValidationError: 400,
    AuthenticationError: 403,
    BodyTooLargeError: 413,
    ModelUnavailableError: 404,
    NoModelLoadedError: 409,
    ModelLoadingError: 500,
    GenerationError: 500,
    GenerationTimeoutError: 504,
    NetworkError: 502,
    RateLimitedError: 429,
}

#: What each status of an error answer means, as the API's description (OpenAPI) says it.
HTTP_STATUS_MEANINGS: dict[int, str] = {
    400: "validation", 403: "not authenticated", 404: "model_unavailable (unknown model, not cached)",
    409: "model_unavailable (no model loaded)", 413: "validation (request body too large)",
    429: "network (rate limited; see Retry-After)", 500: "model_loading or generation",
    502: "network (proxy upstream unreachable)", 504: "timeout",
}

#: The class a category comes back as (the reverse of each class's `error_type`).
_CLASS_OF_TYPE: dict[str, type[DiffusionError]] = {
    cls.error_type: cls
    for cls in (ValidationError, AuthenticationError, ModelUnavailableError, ModelLoadingError,
                GenerationTimeoutError, GenerationError, NetworkError)
}


def as_error(failure: BaseException) -> DiffusionError:
    """Any failure as our categorised error.

    A failure that is not a `DiffusionError` is a bug: it becomes a `generation` error
    that points to the server log (by correlation id) instead of leaking its text.
    """
    if isinstance(failure, DiffusionError):
        return failure
    from .service.correlation import correlation_id

    return GenerationError(f"the request failed unexpectedly; the server log has the details "
                           f"(correlation id {correlation_id.get()})")


def error_body(failure: BaseException) -> dict[str, Any]:
    """The one wire form of any failure: `{error_type, message, retryable}`, scrubbed.

    HTTP bodies, SSE `error` frames, the CLI and the kernel all show this.
    """
    from .service.redaction import scrub

    error = as_error(failure)
    return {"error_type": error.error_type, "message": scrub(error.message), "retryable": error.retryable}


def http_status(failure: BaseException) -> int:
    """The HTTP status `failure` is answered with."""
    return next((_HTTP_STATUS[cls] for cls in type(failure).__mro__ if cls in _HTTP_STATUS), 500)


class WireError(NamedTuple):
    """A failure as an HTTP answer: its status, its error object and the headers it needs."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def wire_error(failure: BaseException) -> WireError:
    """The HTTP answer to any failure (a rate limit says when to retry in `Retry-After`)."""
    headers = {}
    if isinstance(failure, RateLimitedError):
        headers["Retry-After"] = str(max(1, math.ceil(failure.retry_after)))
    return WireError(http_status(failure), error_body(failure), headers)


def refuses_credentials(status: int) -> bool:
    """Whether an HTTP status says the credentials were refused (missing, wrong, or not allowed)."""
    return status in (401, 403)


def error_for_status(status: int, message: str) -> DiffusionError:
    """Our error for an HTTP error the web framework raised itself (no credentials, unknown route, wrong verb)."""
    if refuses_credentials(status):
        return AuthenticationError(message)
    if status < 500:
        return ValidationError(message)
    return GenerationError(message)


def error_from_body(body: Mapping[str, Any]) -> DiffusionError:
    """The exception an error object stands for, so a remote error re-raises as the local one.

    Raises:
        KeyError, TypeError: `body` is not an error object.
    """
    error_type, message, retryable = body["error_type"], body["message"], body["retryable"]
    if not (isinstance(error_type, str) and isinstance(message, str) and isinstance(retryable, bool)):
        raise TypeError("not an error object")
    error_class = _CLASS_OF_TYPE.get(error_type, DiffusionError)
    error = error_class(message, retryable=retryable)
    if error_class is DiffusionError:
        error.error_type = error_type
    return error


def error_from_answer(status: int, body: Any, retry_after: str | None, where: str, path: str = "") -> DiffusionError:
    """Our error from an HTTP error answer of `where` (to `path`): a refusal of credentials, its error object,
    or else its status."""
    if refuses_credentials(status):
        return AuthenticationError(f"{where} refused the credentials (HTTP {status})")
    try:
        return error_from_body(body)
    except (KeyError, TypeError):
        pass
    if status == 429:
        seconds = float(retry_after or 1)
        return RateLimitedError(f"rate limited by {where}; retry in {seconds:g} s", retry_after=seconds)
    return NetworkError(f"{where} answered HTTP {status}" + (f" for {path}" if path else ""))
