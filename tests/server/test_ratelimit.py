"""The token bucket: bursts, refill at the per-minute rate, one bucket per client, off at rate 0."""

from __future__ import annotations

import pytest

from yipyap_jupyter.errors import RateLimitedError
from yipyap_jupyter.server.ratelimit import RateLimiter


class Clock:
    """The limiter's time source, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_per_client() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, burst=2, clock=clock)
    limiter.acquire("alice|127.0.0.1")
    limiter.acquire("alice|127.0.0.1")
    with pytest.raises(RateLimitedError) as refused:
        limiter.acquire("alice|127.0.0.1")
    assert refused.value.retry_after == pytest.approx(10.0) and refused.value.retryable
    limiter.acquire("bob|127.0.0.1")  # a bucket of its own
    clock.now = 10.0
    limiter.acquire("alice|127.0.0.1")
    with pytest.raises(RateLimitedError):
        limiter.acquire("alice|127.0.0.1")


def test_rate_zero_turns_it_off() -> None:
    limiter = RateLimiter(per_minute=0, burst=1)
    for _ in range(100):
        limiter.acquire("anyone")
