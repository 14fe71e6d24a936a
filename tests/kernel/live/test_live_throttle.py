"""How often a live view redraws."""

from __future__ import annotations

from live_events import Clock

from yipyap_jupyter.kernel.live.throttle import Throttle


def test_throttle_lets_one_action_through_per_interval() -> None:
    clock = Clock()
    throttle = Throttle(0.1, clock=clock)
    seen = []
    for tick in range(30):  # a step every 10 ms for 300 ms
        clock.now = tick * 0.01
        seen.append(throttle.ready())
    assert [i for i, ready in enumerate(seen) if ready] == [0, 10, 20]
