"""A cancellation token that can also abort blocking I/O.

It has the interface of the engine's `CancelToken` (`cancel()`, `cancelled`,
`raise_if_cancelled(step)`), which samplers poll once per denoising step, but
lives here so the kernel side does not import torch just to cancel. A
server-backed stream blocks in a socket read between frames, so the server
backend registers an abort (shutting the socket) that `cancel()` runs at once:
the reader wakes, and the server sees the disconnect and cancels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import GenerationCancelled


class StreamCancel:
    """A thread-safe cancel flag plus callbacks run once, from whichever thread cancels."""

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
        """Run `callback` on cancel (now, if already cancelled)."""
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
