"""HTTP handlers of `/api/diffusion`: each only translates HTTP to a service call and back.

The base handler gives every route the same manners: Jupyter authentication on
every verb, a correlation id, bounded JSON bodies parsed without logging them, our
errors answered as `errors.wire_error` says (status, error object, headers), and
one metrics row per authenticated request.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..cancel import CancelToken
from ..errors import (
    DiffusionError,
    GenerationCancelled,
    GenerationError,
    ValidationError,
    error_for_status,
    http_status,
    refuses_credentials,
    wire_error,
)
from ..service.correlation import (
    HEADER,
    choose_correlation_id,
    correlation_id,
    in_current_context,
)
from ..service.logs import get_logger
from ..service.service import DiffusionLLMService
from .bodies import parse_body
from .openapi import openapi_document
from .sse import EventStream
from .state import SETTINGS_KEY, ExtensionState

log = get_logger(__name__)
T = TypeVar("T")

#: What a request that Jupyter refuses before our code runs (no token, a wrong token, no XSRF value) is told.
NOT_AUTHENTICATED = ("not authenticated: send a valid Jupyter token (`Authorization: token ...`), or, from a browser,"
                     " the login cookie with its _xsrf value")


class DiffusionHandler(APIHandler):
    """Base of every route: correlation id, JSON in and out, errors, metrics."""

    #: Name of the route in logs and the metrics DB.
    endpoint = ""
    #: Streams are recorded as such in the metrics DB.
    streaming = False
    #: Quick routes run their blocking calls on their own executor, never behind generations.
    quick = False

    _correlation_id: str | None = None
    _error_type: str | None = None
    _model: str | None = None
    _started = 0.0

    @property
    def correlation_id(self) -> str:
        if self._correlation_id is None:
            self._correlation_id = choose_correlation_id(self.request.headers.get(HEADER))
        return self._correlation_id

    @property
    def state(self) -> ExtensionState:
        return self.settings[SETTINGS_KEY]

    @property
    def service(self) -> DiffusionLLMService:
        service = self.state.service
        assert service is not None, "embedded routes are only registered in embedded mode"
        return service

    def set_default_headers(self) -> None:
        """Also after `clear()` (error responses), so every answer carries the correlation id."""
        super().set_default_headers()
        self.set_header(HEADER, self.correlation_id)

    async def prepare(self) -> None:  # type: ignore[override]
        self._started = time.monotonic()
        correlation_id.set(self.correlation_id)  # this request's own asyncio task context
        await super().prepare()

    def json_body(self) -> Any:
        """The parsed body (`{}` when empty), bounded in size and depth; its texts are registered for redaction."""
        return parse_body(self.request.body or b"")

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run `function` off the IOLoop, in this request's context (quick routes on their own executor)."""
        loop = asyncio.get_running_loop()
        executor = self.state.quick_executor if self.quick else self.state.executor
        return await loop.run_in_executor(executor, in_current_context(function), *args)

    def reply(self, payload: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(payload, ensure_ascii=False))

    def rate_limit(self) -> Callable[[], None]:
        """What spends one token of this client's bucket (user + remote address) or refuses with a 429.

        Jupyter invents a new anonymous user for every token-authenticated request, so
        the holder of the server token counts as one user.
        """
        user = self.current_user
        name = "token" if self.token_authenticated else (getattr(user, "username", None) or str(user))
        return partial(self.state.limiter.acquire, f"{name}|{self.request.remote_ip}")

    # -- errors -----------------------------------------------------------------------

    def _handle_request_exception(self, e: BaseException) -> None:
        """Our errors answer with their own status; anything else is logged (redacted) and answered generically."""
        if isinstance(e, DiffusionError):
            if self._finished:
                return
            self.send_error(http_status(e), exc_info=sys.exc_info())
            return
        super()._handle_request_exception(e)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, web.HTTPError):
            super().log_exception(typ, value, tb)
            return
        log.error("unexpected failure in %s (%s)", self.endpoint, typ.__name__, exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = (kwargs.get("exc_info") or (None, None, None))[1]
        if status_code == 405:
            self.set_header("Allow", ", ".join(self._allowed_methods()))
        if isinstance(error, web.HTTPError):
            error = error_for_status(status_code, self._framework_message(status_code, error))
        answer = wire_error(error if error is not None else GenerationError("the request failed"))
        for name, value in answer.headers.items():
            self.set_header(name, value)
        self._error_type = answer.body["error_type"]
        self.finish(json.dumps(answer.body))

    def _framework_message(self, status_code: int, error: web.HTTPError) -> str:
        """What to say of an error Jupyter or Tornado raised itself (authentication, XSRF, unknown route, verb)."""
        if refuses_credentials(status_code):
            return NOT_AUTHENTICATED
        if status_code == 405:
            allowed = [m for m in self._allowed_methods() if m != "OPTIONS"]
            return f"{self.request.method} is not allowed here: this route answers {', '.join(allowed)}"
        if status_code < 500:
            return error.log_message or self._reason
        return "the server failed to answer; its log has the details"

    def _allowed_methods(self) -> list[str]:
        """The verbs this route implements (for the `Allow` header of a 405)."""
        return [method for method in self.SUPPORTED_METHODS
                if getattr(type(self), method.lower()) is not getattr(web.RequestHandler, method.lower())]

    def on_finish(self) -> None:
        """Log every request; record authenticated ones in the metrics DB (strangers leave no trace)."""
        duration = time.monotonic() - self._started if self._started else 0.0
        status = self.get_status()
        if getattr(self, "_jupyter_current_user", None) is not None:
            self.state.metrics.record(
                endpoint=self.endpoint, method=self.request.method or "", status=status, duration_s=duration,
                stream=self.streaming, error_type=self._error_type, model=self._model,
                correlation_id=self.correlation_id,
            )
        log.info("%s %s answered %d in %.3f s", self.request.method, self.endpoint, status, duration,
                 extra={"fields": {"endpoint": self.endpoint, "status": status, "error_type": self._error_type,
                                   "seconds": round(duration, 4)}})


class ModelsHandler(DiffusionHandler):
    """Known models with their cache and load state (a millisecond of cache lookups: answered on the IOLoop)."""

    endpoint = "models"

    @web.authenticated
    async def get(self) -> None:
        models = self.service.models()
        self.reply({"models": [m.model_dump() for m in models]})


class LoadModelHandler(DiffusionHandler):
    """Load or switch the resident model."""

    endpoint = "models/load"

    @web.authenticated
    async def post(self, model_id: str) -> None:
        body = self.json_body()
        info = await self.blocking(self.service.load_model, model_id, body)
        self._model = info.id
        self.reply(info.model_dump())


class CurrentModelHandler(DiffusionHandler):
    """The resident model, or `{"loaded": false}`."""

    endpoint = "models/current"

    @web.authenticated
    async def get(self) -> None:
        info = self.service.current_model()
        self.reply(info.model_dump() if info is not None else {"loaded": False})


class UnloadModelHandler(DiffusionHandler):
    """Free the resident model (after the generation in flight, if any)."""

    endpoint = "models/current/unload"

    @web.authenticated
    async def post(self) -> None:
        previous = self.service.current_model()
        await self.blocking(self.service.unload_model)
        self.reply({"loaded": False, "unloaded": previous.id if previous is not None else None})


class CompletionHandler(DiffusionHandler):
    """Shared by `/generate` and `/infill`: the whole generation, answered with the `complete` fields."""

    kind = "generate"

    def initialize(self, kind: str) -> None:
        self.kind = kind
        self.endpoint = kind
        self.cancel_token = CancelToken()

    def on_connection_close(self) -> None:
        self.cancel_token.cancel()

    @web.authenticated
    async def post(self) -> None:
        body, admit = self.json_body(), self.rate_limit()
        run = self.service.generate if self.kind == "generate" else self.service.infill
        try:
            done = await self.blocking(lambda: run(body, self.cancel_token, admit))
        except GenerationCancelled:
            self._error_type = "cancelled"
            log.info("%s cancelled: the client went away", self.kind)
            return
        self._model = done.model_used
        self.reply(done.model_dump(exclude={"type"}))


class StreamHandler(DiffusionHandler):
    """Shared by `/generate/stream` and `/infill/stream`: the same work as Server-Sent Events."""

    streaming = True
    stream: EventStream | None = None

    def initialize(self, kind: str) -> None:
        self.kind = kind
        self.endpoint = f"{kind}/stream"

    def on_connection_close(self) -> None:
        if self.stream is not None:
            self.stream.cancel()

    @web.authenticated
    async def post(self) -> None:
        run = self.service.generate_events if self.kind == "generate" else self.service.infill_events
        # a refused body (or a spent rate limit) is the first event: a 400 (429) before the stream opens
        events = partial(run, self.json_body(), admit=self.rate_limit())
        self.stream = EventStream(self, self.state.executor, self.state.keepalive_seconds, self.state.frame_interval)
        log.info("stream %s started", self.endpoint, extra={"fields": {"endpoint": self.endpoint}})
        outcome = await self.stream.run(events)  # raises a refusal before any frame
        self._model, self._error_type = outcome.model, outcome.error_type or (
            None if outcome.end == "complete" else outcome.end)
        log.info("stream %s ended (%s) after %.3f s", self.endpoint, outcome.end, time.monotonic() - self._started,
                 extra={"fields": {"endpoint": self.endpoint, "end": outcome.end, "frames": outcome.frames,
                                   "error_type": outcome.error_type,
                                   "seconds": round(time.monotonic() - self._started, 4)}})
        if not self.stream.closed:
            self.finish(set_content_type="text/event-stream; charset=utf-8")


class SettingsHandler(DiffusionHandler):
    """The persisted user settings (shared with the kernel side through the same file)."""

    endpoint = "settings"
    quick = True

    @web.authenticated
    async def get(self) -> None:
        self.reply(self.service.settings().model_dump())

    @web.authenticated
    async def put(self) -> None:
        updated = await self.blocking(self.service.update_settings, self.json_body())
        self.reply(updated.model_dump())


class DownloadsHandler(DiffusionHandler):
    """Cache state of every known model and the downloads started since start-up."""

    endpoint = "downloads"
    quick = True

    @web.authenticated
    async def get(self) -> None:
        models = await self.blocking(self.service.models)
        assert self.state.downloads is not None
        self.reply({
            "models": [{"id": m.id, "repo_id": m.repo_id, "cached": m.cached, "size_on_disk": m.size_on_disk,
                        "path": m.path} for m in models],
            "downloads": [d.model_dump() for d in self.state.downloads.states()],
        })


class DownloadModelHandler(DiffusionHandler):
    """Start downloading a known model in the background (202); poll `/downloads` for progress."""

    endpoint = "models/download"

    @web.authenticated
    async def post(self, model_id: str) -> None:
        assert self.state.downloads is not None
        state = self.state.downloads.start(model_id)
        self._model = state.model_id
        self.reply(state.model_dump(), status=202)


class MetricsHandler(DiffusionHandler):
    """Counts and durations per route, and the latest requests, from the metrics DB."""

    endpoint = "metrics"
    quick = True

    @web.authenticated
    async def get(self) -> None:
        try:
            recent = int(self.get_argument("recent", "20"))
        except ValueError:
            raise ValidationError("recent must be an integer") from None
        if not 0 <= recent <= 1000:
            raise ValidationError("recent must be between 0 and 1000")
        self.reply(await self.blocking(self.state.metrics.summary, recent))


class OpenAPIHandler(DiffusionHandler):
    """This API described as OpenAPI 3."""

    endpoint = "openapi.json"

    @web.authenticated
    async def get(self) -> None:
        self.reply(openapi_document())


class NotFoundHandler(DiffusionHandler):
    """Any other path under the API: our 404 error object (403 first for strangers)."""

    endpoint = "unknown"

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if self.current_user is None:
            raise web.HTTPError(403)
        raise web.HTTPError(404, "no such route under /api/diffusion (see openapi.json)")
