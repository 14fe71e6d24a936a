"""Token-bucket rate limiting per client (authenticated user + remote address).

The server's defaults (`DiffusionLLMApp.rate_limit_*`) are sized so that a person at a notebook never
meets them: a client that waits for each answer cannot spend tokens faster than they come back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ..errors import RateLimitedError

#: Buckets kept at most; the least recently seen clients are forgotten first (a full bucket again).
MAX_CLIENTS = 10_000


class RateLimiter:
    """`per_minute` requests a minute on average, bursts of up to `burst`; `per_minute <= 0` turns it off."""

    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, last refill)
        self._lock = threading.Lock()

    def acquire(self, client: str) -> None:
        """Take one token for `client`, or raise `RateLimitedError` saying when one will be there."""
        if self.rate <= 0:
            return
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(
                    f"rate limit: more than {self.rate * 60:g} generation requests a minute (bursts of {self.burst})"
                    f" from this client; retry in {max(1, math.ceil(wait))} s", retry_after=wait)
            self._buckets[client] = (tokens - 1.0, now)
            while len(self._buckets) > MAX_CLIENTS:
                self._buckets.popitem(last=False)
