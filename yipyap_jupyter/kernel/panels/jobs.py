"""Background work for panels: widget callbacks must return at once.

A click arrives on the kernel's shell channel; while a handler blocks, no other
widget message (such as the Stop click) is processed. So each panel runs its
work in a daemon thread with a cancel token, and reports through widget traits,
which may be set from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ...cancel import CancelToken


class BackgroundJob:
    """At most one piece of work at a time, in a thread, cancellable."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._thread: threading.Thread | None = None
        self._cancel: CancelToken | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, work: Callable[[CancelToken], None]) -> bool:
        """Run `work(cancel)` in a new thread; False (and nothing started) if one is still running."""
        if self.running:
            return False
        self._cancel = CancelToken()
        self._thread = threading.Thread(target=work, args=(self._cancel,), name=self.name, daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Ask the running work to stop (it ends within one denoising step)."""
        if self._cancel is not None:
            self._cancel.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the work ends; True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running
