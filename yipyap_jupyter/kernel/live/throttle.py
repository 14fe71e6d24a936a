"""How often a live view redraws: about ten times a second, whatever the step rate."""

from __future__ import annotations

import time
from collections.abc import Callable

#: Seconds between two redraws of a live view.
UPDATE_INTERVAL = 0.1


class Throttle:
    """Lets an action through at most once per `interval` of `clock` time."""

    def __init__(self, interval: float = UPDATE_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """True (and restarts the interval) when `interval` has passed since the last True."""
        now = self.clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False
