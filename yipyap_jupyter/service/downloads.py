"""Model downloads in the background, with byte progress a client can poll.

The manager's `download` does the transfer (huggingface_hub, which resumes a
partial file on the next attempt); this module runs it on a thread per model and
keeps each download's state.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from ..errors import DiffusionError, ModelUnavailableError, NetworkError, error_body
from .correlation import in_current_context
from .logs import get_logger

if TYPE_CHECKING:
    from ..engine.runtime import DiffusionModelManager

log = get_logger(__name__)


class DownloadState(BaseModel):
    """One model's latest download."""

    model_id: str
    state: Literal["downloading", "done", "failed"]
    bytes_done: int = 0
    bytes_total: int = 0
    started: float
    finished: float | None = None
    path: str | None = None
    error: dict[str, Any] | None = None


class Downloads:
    """At most one download per model at a time; the state of every one started since start-up."""

    def __init__(self, manager: DiffusionModelManager) -> None:
        self.manager = manager
        self._states: dict[str, DownloadState] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, model_id: str) -> DownloadState:
        """Begin downloading a known model (or report the one already running)."""
        spec = self.manager.registry.lookup(model_id)
        if spec is None:
            known = ", ".join(s.id for s in self.manager.registry.specs())
            raise ModelUnavailableError(f"unknown model {model_id[:200]!r}: downloadable models are {known}")
        with self._lock:
            running = self._states.get(spec.id)
            if running is not None and running.state == "downloading":
                return running.model_copy()
            self._states[spec.id] = DownloadState(model_id=spec.id, state="downloading", started=time.time())
            worker = threading.Thread(target=in_current_context(self._run), args=(spec.id,),
                                      name=f"yipyap-download-{spec.id}", daemon=True)
            self._threads[spec.id] = worker
        worker.start()
        return self.state(spec.id)

    def state(self, model_id: str) -> DownloadState:
        with self._lock:
            return self._states[model_id].model_copy()

    def states(self) -> list[DownloadState]:
        with self._lock:
            return [s.model_copy() for s in self._states.values()]

    def wait(self, model_id: str, timeout: float | None = None) -> DownloadState:
        """Block until the model's download thread ends (tests, and shutting down cleanly)."""
        with self._lock:
            worker = self._threads.get(model_id)
        if worker is not None:
            worker.join(timeout)
        return self.state(model_id)

    def _progress(self, model_id: str, done: int, total: int) -> None:
        with self._lock:
            state = self._states[model_id]
            state.bytes_done, state.bytes_total = done, max(total, done)

    def _run(self, model_id: str) -> None:
        started = time.monotonic()
        log.info("download of %s started", model_id)
        try:
            info = self.manager.download(model_id, progress=lambda done, total: self._progress(model_id, done, total))
        except DiffusionError as error:
            self._finish(model_id, state="failed", error=error_body(error))
            log.warning("download of %s failed: %s", model_id, error.message)
            return
        except Exception as error:  # huggingface_hub raises more than the registry maps
            self._finish(model_id, state="failed",
                         error=error_body(NetworkError(f"download failed: {type(error).__name__}")))
            log.exception("download of %s failed unexpectedly", model_id)
            return
        with self._lock:
            state = self._states[model_id]
            state.bytes_total = max(state.bytes_total, info.size_on_disk)
            state.bytes_done = state.bytes_total
        self._finish(model_id, state="done", path=info.path)
        log.info("download of %s finished in %.1f s", model_id, time.monotonic() - started)

    def _finish(self, model_id: str, **changes: Any) -> None:
        with self._lock:
            state = self._states[model_id]
            for key, value in changes.items():
                setattr(state, key, value)
            state.finished = time.time()
