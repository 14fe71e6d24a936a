"""The server backend: the Jupyter server's `/api/diffusion` over HTTP and SSE.

Every notebook on the machine then shares the server's one loaded model. A request
is checked by the service's own request types before it is sent, and each SSE frame
is rebuilt into the service's own event with `event_from_dict`, so a stream reads
exactly like the local backend's. A server that refuses the kernel's token is an
error saying so, never a reason to run the model in the kernel instead. Cancelling shuts the socket:
the blocked reader wakes at once and the server, seeing the disconnect,
cancels the generation within one denoising step.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError

from ..cancel import CancelToken
from ..errors import (
    AuthenticationError,
    DiffusionError,
    GenerationCancelled,
    NetworkError,
    ValidationError,
    error_from_answer,
    refuses_credentials,
)
from ..service.downloads import DownloadState
from ..service.events import ErrorEvent, event_from_dict
from ..service.schemas import GenerateRequest, InfillRequest, ModelInfo
from .discovery import SERVER_TOKEN_ENV, ServerInfo
from .downloads import follow_download

if TYPE_CHECKING:
    from ..service.events import Event
    from ..settings import UserSettings

#: Seconds to wait for the server to answer a plain request (loading a big model is longer: see LOAD_TIMEOUT).
REQUEST_TIMEOUT = 30.0
LOAD_TIMEOUT = 3600.0
#: Seconds between two looks at a server-side download's progress.
DOWNLOAD_POLL_SECONDS = 0.5
#: Seconds `auto` waits for the extension to answer before choosing the local backend.
PROBE_TIMEOUT = 3.0


#: How to stop using the server, for error messages.
USE_LOCAL = 'to run models inside this kernel instead, use DiffusionClient(backend="local")'


def _refused(server: ServerInfo, status: int) -> NetworkError:
    """The error for a server that does not accept this kernel's credentials."""
    who = "this kernel's token" if server.token else f"a request without a token (set {SERVER_TOKEN_ENV})"
    return NetworkError(f"the Jupyter server at {server.url} refused {who} (HTTP {status}); {USE_LOCAL}",
                        retryable=False)


def _error_from_response(server: ServerInfo, response: httpx.Response) -> DiffusionError:
    """Our error from a non-2xx answer (`errors.error_from_answer`); a refusal of credentials says how to go on."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = error_from_answer(response.status_code, body, response.headers.get("Retry-After"), "the Jupyter server",
                              response.request.url.path)
    return _refused(server, response.status_code) if isinstance(error, AuthenticationError) else error


def _shutdown(response: httpx.Response) -> Callable[[], None]:
    """An abort for `response`: shut its socket down so a read blocked in another thread returns."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None

    def abort() -> None:
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    return abort


class ServerBackend:
    """HTTP client for `{server url}api/diffusion`, authenticated with the server's token."""

    name = "server"

    def __init__(self, server: ServerInfo) -> None:
        self.server = server
        headers = {"Authorization": f"token {server.token}"} if server.token else {}
        transport = httpx.HTTPTransport(uds=server.sock) if server.sock else None
        self._http = httpx.Client(base_url=server.api_url + "/", headers=headers, transport=transport,
                                  timeout=REQUEST_TIMEOUT)

    def __repr__(self) -> str:
        return f"ServerBackend({self.server!r})"

    def available(self) -> bool:
        """Whether the extension answers at this server (what `auto` asks).

        Raises:
            NetworkError: the server is there but refuses this kernel's token.
        """
        try:
            status = self._http.get("models", timeout=PROBE_TIMEOUT).status_code
        except httpx.HTTPError:
            return False
        if refuses_credentials(status):
            raise _refused(self.server, status)
        return status == 200

    def _call(self, method: str, path: str, body: Any = None, timeout: float = REQUEST_TIMEOUT) -> Any:
        try:
            response = self._http.request(method, path, json=body, timeout=timeout)
        except httpx.TransportError as error:
            raise NetworkError(f"the Jupyter server at {self.server.url} is unreachable: {type(error).__name__}") from None
        except ValueError:  # JSON has no inf or NaN
            raise ValidationError("a value in the request is not a finite number") from None
        if response.status_code >= 400:
            raise _error_from_response(self.server, response)
        return response.json() if response.content else None

    # -- models and settings ----------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        return [ModelInfo.model_validate(item) for item in self._call("GET", "models")["models"]]

    def load(self, model_id: str, device: str | None = None, dtype: str | None = None) -> ModelInfo:
        body = {key: value for key, value in (("device", device), ("dtype", dtype)) if value is not None}
        return ModelInfo.model_validate(self._call("POST", f"models/{quote(model_id, safe='')}/load", body, LOAD_TIMEOUT))

    def current(self) -> ModelInfo | None:
        data = self._call("GET", "models/current")
        return ModelInfo.model_validate(data) if data.get("id") else None  # else {"loaded": false}

    def unload(self) -> None:
        self._call("POST", "models/current/unload", {})

    def settings(self) -> UserSettings:
        from ..settings import UserSettings

        return UserSettings.model_validate(self._call("GET", "settings"))

    def update_settings(self, changes: dict[str, Any]) -> UserSettings:
        from ..settings import UserSettings

        return UserSettings.model_validate(self._call("PUT", "settings", changes))

    def download(self, model_id: str, progress: Callable[[int, int], None] | None = None) -> ModelInfo:
        """Start the server's background download, then poll `/downloads` for its progress."""
        started = DownloadState.model_validate(self._call("POST", f"models/{quote(model_id, safe='')}/download", {}))
        done = follow_download(started, self._download_state, progress)
        return next(m for m in self.models() if m.id == done)

    def _download_state(self, model_id: str) -> DownloadState:
        """The state of `model_id`'s download, a poll interval from now."""
        time.sleep(DOWNLOAD_POLL_SECONDS)
        downloads = self._call("GET", "downloads")["downloads"]
        return DownloadState.model_validate(next(d for d in downloads if d["model_id"] == model_id))

    # -- generation -------------------------------------------------------------------

    def generate_events(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        return self._stream("generate/stream", request, cancel or CancelToken())

    def infill_events(self, request: InfillRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        return self._stream("infill/stream", request, cancel or CancelToken())

    def _stream(self, path: str, request: GenerateRequest | InfillRequest, cancel: CancelToken) -> Iterator[Event]:
        """The SSE frames of one request (already checked by its type) as events; a refusal is the error event."""
        body = request.given()
        step = 0
        try:
            with self._http.stream("POST", path, json=body, timeout=httpx.Timeout(REQUEST_TIMEOUT, read=None)) as response:
                if response.status_code >= 400:
                    response.read()
                    yield ErrorEvent.from_error(_error_from_response(self.server, response))
                    return
                cancel.on_cancel(_shutdown(response))
                for frame in EventSource(response).iter_sse():
                    cancel.raise_if_cancelled(step)
                    event = event_from_dict(frame.json())
                    if event.type == "step":
                        step = event.step
                    yield event
        except (httpx.TransportError, SSEError) as error:
            if cancel.cancelled:
                raise GenerationCancelled(step) from None
            yield ErrorEvent.from_error(NetworkError(f"the stream from {self.server.url} broke: {type(error).__name__}"))
            return
        cancel.raise_if_cancelled(step)
