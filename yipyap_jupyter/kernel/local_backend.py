"""The local backend: the service and its model manager, inside this kernel.

One service per kernel process (`LocalBackend.shared()`), so the magics, the
panels and user code share one resident model, as the server shares one
between notebooks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from .downloads import follow_download

#: Seconds between two looks at a download's progress.
DOWNLOAD_POLL_SECONDS = 0.2

if TYPE_CHECKING:
    from ..cancel import CancelToken
    from ..service.events import Event
    from ..service.schemas import GenerateRequest, InfillRequest, ModelInfo
    from ..service.service import DiffusionLLMService
    from ..settings import UserSettings


class LocalBackend:
    """Thin adapter over `DiffusionLLMService`; validation, errors and events are the service's own."""

    name = "local"
    _shared: ClassVar[LocalBackend | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, service: DiffusionLLMService | None = None) -> None:
        if service is None:
            from ..service.service import DiffusionLLMService

            service = DiffusionLLMService()
        self.service = service

    @classmethod
    def shared(cls) -> LocalBackend:
        """This process's one local backend."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def models(self) -> list[ModelInfo]:
        return self.service.models()

    def load(self, model_id: str, device: str | None = None, dtype: str | None = None) -> ModelInfo:
        body = {key: value for key, value in (("device", device), ("dtype", dtype)) if value is not None}
        return self.service.load_model(model_id, body)

    def current(self) -> ModelInfo | None:
        return self.service.current_model()

    def unload(self) -> None:
        self.service.unload_model()

    def generate_events(self, request: GenerateRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        return self.service.generate_events(request, cancel)

    def infill_events(self, request: InfillRequest, cancel: CancelToken | None = None) -> Iterator[Event]:
        return self.service.infill_events(request, cancel)

    def settings(self) -> UserSettings:
        return self.service.settings()

    def update_settings(self, changes: dict[str, Any]) -> UserSettings:
        return self.service.update_settings(changes)

    def download(self, model_id: str, progress: Callable[[int, int], None] | None = None) -> ModelInfo:
        """The service's background download (the one the server runs too), followed until it ends."""
        downloads = self.service.downloads
        done = follow_download(downloads.start(model_id), lambda key: downloads.wait(key, DOWNLOAD_POLL_SECONDS),
                               progress)
        return next(m for m in self.models() if m.id == done)
