"""What every answer of the Serve ingress has, whatever the route: the Jupyter extension's house rules.

The bearer token is checked before anything else (403 without it, as Jupyter answers
strangers); every response carries `X-Correlation-ID` and `X-Replica` (the model replica
that ran the request, else the ingress replica that answered it alone); every request is
logged once, and the authenticated ones are recorded in the metrics DB when their last byte
has gone (so a stream counts with its whole duration).
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AuthenticationError, wire_error
from ..server.metrics import MetricsStore
from ..service.correlation import HEADER, choose_correlation_id, correlation_id
from ..service.logs import get_logger

log = get_logger(__name__)

REPLICA_HEADER = "X-Replica"
#: The answer to a request without valid credentials (a 403, as the extension answers).
FORBIDDEN = wire_error(AuthenticationError("not authenticated: send a valid token (`Authorization: token ...`)"))


@dataclass
class RequestRecord:
    """What a route tells the metrics DB about its request (kept in the ASGI scope's state)."""

    endpoint: str = "unknown"
    stream: bool = False
    error_type: str | None = None
    model: str | None = None


def token_of(authorization: str) -> str:
    """The credential of an `Authorization: token T` or `Authorization: Bearer T` header ("" otherwise)."""
    scheme, _, credential = authorization.partition(" ")
    return credential.strip() if scheme.lower() in ("token", "bearer") else ""


class Manners:
    """ASGI middleware: token, correlation id, `X-Replica`, log line and metrics row for every request."""

    def __init__(self, app: ASGIApp, token: str, replica: str, metrics: MetricsStore) -> None:
        if not token:
            raise ValueError("the Serve ingress needs a token")
        self.app = app
        self.token = token
        self.replica = replica
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        correlation = choose_correlation_id(headers.get(HEADER.lower()))
        correlation_id.set(correlation)
        own = [(HEADER.encode(), correlation.encode())]
        if not hmac.compare_digest(token_of(headers.get("authorization", "")).encode(), self.token.encode()):
            await _send_json(send, FORBIDDEN.status, FORBIDDEN.body,
                             own + [(REPLICA_HEADER.encode(), self.replica.encode())])
            self._log(scope, FORBIDDEN.status, started, None)
            return
        record = RequestRecord()
        scope.setdefault("state", {})["record"] = record
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = own if REPLICA_HEADER.lower().encode() in names else own + [
                    (REPLICA_HEADER.encode(), self.replica.encode())]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._finished(scope, status, started, record, correlation)

        await self.app(scope, receive, send_with_headers)

    def _finished(self, scope: Scope, status: int, started: float, record: RequestRecord, correlation: str) -> None:
        duration = time.monotonic() - started
        self.metrics.record(endpoint=record.endpoint, method=scope["method"], status=status, duration_s=duration,
                            stream=record.stream, error_type=record.error_type, model=record.model,
                            correlation_id=correlation)
        self._log(scope, status, started, record)

    @staticmethod
    def _log(scope: Scope, status: int, started: float, record: RequestRecord | None) -> None:
        duration = time.monotonic() - started
        endpoint = record.endpoint if record is not None else "unauthenticated"
        log.info("%s %s answered %d in %.3f s", scope["method"], endpoint, status, duration,
                 extra={"fields": {"endpoint": endpoint, "status": status, "seconds": round(duration, 4),
                                   "error_type": record.error_type if record is not None else None}})


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})
