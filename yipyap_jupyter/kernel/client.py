"""`DiffusionClient`: one API for the magics, the panels and user code, over two backends.

`local` runs the service (and its model manager) inside the kernel; `server`
talks to the Jupyter server that started the kernel, over HTTP + SSE, so every
notebook on the machine shares the server's one loaded model. `auto` takes the
server when its extension answers, else local. Both backends hand back the
service's own events, so a request with a seed gives the same steps either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..cancel import CancelToken
from ..constants import DEFAULT_MODEL_ID
from ..errors import NetworkError, ValidationError
from ..service.schemas import GenerateRequest, InfillRequest
from ..service.validation import validate
from .discovery import ServerInfo, find_server
from .live.cell import run_live
from .render import Context
from .result import DiffusionResult

if TYPE_CHECKING:
    from ..service.events import Event
    from ..service.schemas import ModelInfo
    from ..settings import UserSettings

ProgressCallback = Callable[[int, int], None]
BackendName = Literal["auto", "local", "server"]
BACKENDS = ("auto", "local", "server")


class Backend(Protocol):
    """What both backends provide; generations take the service's typed requests."""

    name: str

    def models(self) -> list[ModelInfo]: ...
    def load(self, model_id: str, device: str | None = None, dtype: str | None = None) -> ModelInfo: ...
    def current(self) -> ModelInfo | None: ...
    def unload(self) -> None: ...
    def generate_events(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]: ...
    def infill_events(self, request: InfillRequest, cancel: CancelToken | None = None) -> Iterator[Event]: ...
    def settings(self) -> UserSettings: ...
    def update_settings(self, changes: dict[str, Any]) -> UserSettings: ...
    def download(self, model_id: str, progress: ProgressCallback | None = None) -> ModelInfo: ...


def generate_request(prompt: str, **options: Any) -> GenerateRequest:
    """The request for continuing `prompt`: only the options given (None means "not set").

    Raises `ValidationError` (from the request type, the one place that checks) for bad values.
    """
    return validate(GenerateRequest, _given(prompt=prompt, **options))


def infill_request(prefix: str, suffix: str, **options: Any) -> InfillRequest:
    """The request for filling between `prefix` and `suffix` (`length=` or `variable=True`)."""
    return validate(InfillRequest, _given(prefix=prefix, suffix=suffix, **options))


def _given(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def context_of(request: GenerateRequest | InfillRequest) -> Context:
    """What surrounds the generated region of `request`: its prompt, or its prefix and suffix."""
    if isinstance(request, GenerateRequest):
        return Context(before=request.prompt)
    return Context(before=request.prefix, after=request.suffix)


class DiffusionClient:
    """Models, settings and generations through the local service or the Jupyter server.

    Args:
        backend: "auto" (server if its `/api/diffusion` answers, else local), "local", "server",
            or a backend object (e.g. a `LocalBackend` over a service of your own).
        server: the server to use; found from Jupyter's runtime files when None.
    """

    def __init__(self, backend: BackendName | Backend = "auto", *, server: ServerInfo | None = None) -> None:
        self._backend: Backend | None = None
        if not isinstance(backend, str):
            self._backend, requested = backend, backend.name
        elif backend in BACKENDS:
            requested = backend
        else:
            raise ValidationError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self._requested = requested
        self._server = server
        self._lock = threading.Lock()

    @property
    def backend(self) -> Backend:
        """The backend in use, chosen on first use."""
        with self._lock:
            if self._backend is None:
                self._backend = self._choose()
            return self._backend

    def _choose(self) -> Backend:
        if self._requested != "local":
            from .server_backend import ServerBackend

            server = self._server or find_server()
            if server is not None:
                remote = ServerBackend(server)
                if self._requested == "server" or remote.available():
                    return remote
            elif self._requested == "server":
                raise NetworkError("no Jupyter server found for this kernel (set YIPYAP_SERVER_URL to name one)")
        from .local_backend import LocalBackend

        return LocalBackend.shared()

    def __repr__(self) -> str:
        chosen = self._backend.name if self._backend is not None else f"{self._requested} (not connected yet)"
        return f"DiffusionClient(backend={chosen})"

    # -- models and settings ----------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        """Every known model with its cache and load state."""
        return self.backend.models()

    def load(self, model_id: str = DEFAULT_MODEL_ID, device: str | None = None, dtype: str | None = None) -> ModelInfo:
        """Load (or switch to) a model; device None means the preferred device from the settings."""
        return self.backend.load(model_id, device, dtype)

    def current(self) -> ModelInfo | None:
        """The loaded model, or None."""
        return self.backend.current()

    def unload(self) -> None:
        """Free the loaded model (and its accelerator memory)."""
        self.backend.unload()

    def settings(self) -> UserSettings:
        return self.backend.settings()

    def update_settings(self, **changes: Any) -> UserSettings:
        """Change and save settings; a bad value raises `ValidationError` and nothing is saved."""
        return self.backend.update_settings(changes)

    def download(self, model_id: str, progress: ProgressCallback | None = None) -> ModelInfo:
        """Fetch a known model's weights into the Hugging Face cache; `progress(done, total)` in bytes."""
        return self.backend.download(model_id, progress)

    # -- generation -------------------------------------------------------------------

    def events(self, request: GenerateRequest | InfillRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        """The service's events for `request`: status, steps, then complete or error."""
        if isinstance(request, GenerateRequest):
            return self.backend.generate_events(request, cancel)
        return self.backend.infill_events(request, cancel)

    def run(self, request: GenerateRequest | InfillRequest, *, live: bool = False) -> DiffusionResult:
        """Run `request` to its result (what `%%diffuse` does); raises the failure's `DiffusionError`.

        With `live=True` in a notebook the denoising is drawn in the cell; a kernel interrupt
        stops it and raises `GenerationStopped` with the partial result.
        """
        return run_live(lambda cancel: self.events(request, cancel), context_of(request), live=live)

    def stream_generate(self, prompt: str, *, cancel: CancelToken | None = None, **options: Any) -> Iterator[Event]:
        """The service's events for continuing `prompt`.

        Options are the fields of `GenerateRequest` (max_new_tokens, steps, block_length,
        temperature, seed, threshold, cache, remasking, alg, model, ...); a bad one raises
        `ValidationError` before anything runs.
        """
        return self.events(generate_request(prompt, **options), cancel)

    def stream_infill(
        self, prefix: str, suffix: str, *, cancel: CancelToken | None = None, **options: Any
    ) -> Iterator[Event]:
        """The service's events for filling between `prefix` and `suffix` (fields of `InfillRequest`)."""
        return self.events(infill_request(prefix, suffix, **options), cancel)

    def generate(self, prompt: str, *, live: bool = False, **options: Any) -> DiffusionResult:
        """Continue `prompt` and return the result (raises the failure's `DiffusionError`)."""
        return self.run(generate_request(prompt, **options), live=live)

    def infill(self, prefix: str, suffix: str, *, live: bool = False, **options: Any) -> DiffusionResult:
        """Fill between `prefix` and `suffix` and return the result (raises on failure)."""
        return self.run(infill_request(prefix, suffix, **options), live=live)
