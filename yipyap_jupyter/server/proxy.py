"""Proxy mode: every `/api/diffusion` route forwarded to another Jupyter server running this extension.

For a notebook machine without a GPU: users authenticate here as usual, and the
request goes on with the operator's token for the upstream server. Streams are
relayed chunk by chunk; a client that leaves closes the upstream stream, which
cancels the generation there. Every route has its own timeouts: quick routes a
short read timeout, streams an idle timeout a little over two keep-alive periods
(the upstream sends a comment every period), routes that wait for the model the
longest request timeout; when one passes, the answer is a `network` error.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from tornado import web

from ..errors import NetworkError, refuses_credentials
from ..service.correlation import HEADER
from ..service.events import ErrorEvent
from ..service.logs import get_logger
from .handlers import DiffusionHandler
from .sse import frame

log = get_logger(__name__)

#: Routes that open a stream.
STREAM_PATHS = frozenset({"generate/stream", "infill/stream"})
#: Routes that generate, and so spend rate-limit tokens here as they do upstream.
GENERATION_PATHS = STREAM_PATHS | {"generate", "infill"}
#: Response headers worth passing back to the client (`X-Replica`: which replica of a Serve upstream ran it).
RELAYED_HEADERS = ("Content-Type", "Cache-Control", "Retry-After", "X-Accel-Buffering", "X-Replica")
#: Routes that wait for the model without a stream: a generation or a load may take this long.
MODEL_PATHS = frozenset({"generate", "infill", "models/current/unload"})
#: Seconds to connect to the upstream, on every route.
CONNECT_SECONDS = 10.0
#: Seconds a route that waits for the model may read nothing: the longest request timeout, and some.
MODEL_READ_SECONDS = 3700.0


def upstream_timeout(path: str, quick_seconds: float, keepalive_seconds: float) -> httpx.Timeout:
    """The timeouts of one proxied route (`path` is relative to the API)."""
    if path in STREAM_PATHS:
        read = 2 * keepalive_seconds + quick_seconds
    elif path in MODEL_PATHS or path.endswith("/load"):
        read = MODEL_READ_SECONDS
    else:
        read = quick_seconds
    return httpx.Timeout(connect=CONNECT_SECONDS, read=read, write=quick_seconds, pool=CONNECT_SECONDS)


class ProxyHandler(DiffusionHandler):
    """Forward the request to `proxy_url` and relay the answer as it arrives."""

    relay: asyncio.Future[None] | None = None

    def on_connection_close(self) -> None:
        if self.relay is not None:
            self.relay.cancel()

    @web.authenticated
    async def get(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self._forward(path)

    @web.authenticated
    async def put(self, path: str) -> None:
        await self._forward(path)

    async def _forward(self, path: str) -> None:
        self.endpoint = f"proxy:{path}"
        self.streaming = path in STREAM_PATHS
        if path in GENERATION_PATHS and self.request.method == "POST":
            self.rate_limit()()  # the upstream validates: a proxy can only charge what it forwards
        self.relay = asyncio.ensure_future(self._relay(path))
        try:
            await self.relay
        except asyncio.CancelledError:
            self._error_type = "cancelled"
            log.info("proxied %s cancelled: the client went away", path)

    async def _relay(self, path: str) -> None:
        base = (self.state.proxy_url or "").rstrip("/")
        raw_path = self.request.path[self.request.path.index("/api/diffusion/"):]  # still percent-encoded
        url = base + raw_path + (f"?{self.request.query}" if self.request.query else "")
        headers = {"Authorization": f"token {self.state.proxy_token}", HEADER: self.correlation_id,
                   "Accept": self.request.headers.get("Accept", "*/*")}
        if self.request.body:
            headers["Content-Type"] = "application/json"
        started = False
        content_type = "application/json"
        timeout = upstream_timeout(path, self.state.proxy_timeout_seconds, self.state.keepalive_seconds)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client, client.stream(
                self.request.method or "GET", url, content=self.request.body or None, headers=headers
            ) as upstream:
                if refuses_credentials(upstream.status_code):
                    raise NetworkError(
                        f"the upstream diffusion server refused the proxy token (HTTP {upstream.status_code}):"
                        " set DiffusionLLMApp.proxy_token to a token of that server", retryable=False)
                self.set_status(upstream.status_code)
                for name in RELAYED_HEADERS:
                    if name in upstream.headers:
                        self.set_header(name, upstream.headers[name])
                content_type = upstream.headers.get("Content-Type", content_type)
                started = True
                failed_body = b""
                async for chunk in upstream.aiter_raw():
                    if upstream.status_code >= 400:
                        failed_body += chunk
                    self.write(chunk)
                    await self.flush()
                if upstream.status_code >= 400:
                    self._error_type = _error_type_of(failed_body)
        except httpx.HTTPError as error:
            failure = NetworkError(
                f"the upstream diffusion server did not answer in time ({type(error).__name__})"
                if isinstance(error, httpx.TimeoutException) else
                f"the upstream diffusion server is unreachable ({type(error).__name__})")
            log.warning("proxy to %s failed: %s", base, type(error).__name__)
            if not started:
                raise failure from None
            self._error_type = failure.error_type
            self.write(frame(ErrorEvent.from_error(failure)))
        self.finish(set_content_type=content_type)


def _error_type_of(body: bytes) -> str | None:
    """The upstream error object's category, when its body was one."""
    try:
        return json.loads(body).get("error_type")
    except (ValueError, AttributeError):
        return None
