"""Proxy mode: every `/api/diffusion` route forwarded to another Jupyter server running this extension.

For a notebook machine without a GPU: users authenticate here as usual, and the
request goes on with the operator's token for the upstream server. Streams are
relayed chunk by chunk; a client that leaves closes the upstream stream, which
cancels the generation there.
"""

from __future__ import annotations

import asyncio
import json

import httpx
from tornado import web

from ..errors import NetworkError
from ..service.correlation import HEADER
from ..service.events import ErrorEvent
from ..service.logs import get_logger
from .handlers import DiffusionHandler
from .sse import frame

log = get_logger(__name__)

#: Routes that open a stream, and so spend rate-limit tokens here as they do upstream.
STREAM_PATHS = frozenset({"generate/stream", "infill/stream"})
#: Response headers worth passing back to the client.
RELAYED_HEADERS = ("Content-Type", "Cache-Control", "Retry-After", "X-Accel-Buffering")
#: Upstream reads may pause for a whole generation (non-streaming routes) but not forever.
UPSTREAM_TIMEOUT = httpx.Timeout(connect=10.0, read=3700.0, write=60.0, pool=10.0)


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
        if self.streaming and self.request.method == "POST":
            self.rate_limit()
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
        try:
            async with httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT) as client, client.stream(
                self.request.method or "GET", url, content=self.request.body or None, headers=headers
            ) as upstream:
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
            failure = NetworkError(f"the upstream diffusion server is unreachable ({type(error).__name__})")
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
