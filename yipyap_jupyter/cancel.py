"""The one cancellation token: set by a caller, polled by a sampler once per step.

Torch-free, so the server's IOLoop and the kernel can create and cancel it
without importing the engine. Callbacks registered with `on_cancel` run once,
on whichever thread cancels: the kernel's server backend uses one to shut the
socket a stream is blocked on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import GenerationCancelled


class CancelToken:
    """Thread-safe cancel flag with callbacks."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, step: int) -> None:
        """Raise `GenerationCancelled` if `cancel()` was called."""
        if self._event.is_set():
            raise GenerationCancelled(step)

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run `callback` on cancel (at once, if already cancelled)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()
