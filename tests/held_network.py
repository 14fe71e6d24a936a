"""A network whose forward passes wait at a gate until the test lets them through.

Tests that need a generation still running when the next thing happens (a Stop, an
interrupt, a request that queues or times out) hold the network instead of hoping that
a long run is long enough on this machine: what they assert then holds on a machine of
any speed. A pass that is held longer than `deadline` fails the generation with what it
waited for, so a test that forgets to let passes through ends instead of hanging.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

#: Seconds a test waits for a pass, and a pass waits for the test, before failing.
DEADLINE = 120.0


class HeldNetwork:
    """A forward pre-hook on `network`: the first `free` passes go through, later ones wait for `allow`/`open`.

    Use as a context manager: leaving it opens the gate and removes the hook.
    """

    def __init__(self, network: Any, free: int = 0, deadline: float = DEADLINE) -> None:
        self.deadline = deadline
        self.arrived = 0  # passes that reached the gate, counted from 1
        self._allowed: float = free
        self._changed = threading.Condition()
        self._hook = network.register_forward_pre_hook(self._hold)

    def _hold(self, module: Any, args: Any) -> None:
        with self._changed:
            self.arrived += 1
            number = self.arrived
            self._changed.notify_all()
            if not self._changed.wait_for(lambda: self._allowed >= number, timeout=self.deadline):
                raise TimeoutError(f"pass {number} was held {self.deadline:g} s and never let through")

    def allow(self, passes: int = 1) -> None:
        """Let `passes` more passes through."""
        with self._changed:
            self._allowed += passes
            self._changed.notify_all()

    def open(self) -> None:
        """Let every pass through from now on, and remove the hook."""
        with self._changed:
            self._allowed = math.inf
            self._changed.notify_all()
        self._hook.remove()

    def wait_held(self, number: int, timeout: float = DEADLINE) -> None:
        """Block until pass `number` has reached the gate (it waits there unless allowed)."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.arrived >= number, timeout=timeout):
                raise AssertionError(f"pass {number} never came within {timeout:g} s: {self.arrived} passes did")

    async def held(self, number: int, timeout: float = DEADLINE) -> None:
        """`wait_held` for a test on an event loop that must keep serving (an in-process server)."""
        until = time.monotonic() + timeout
        while self.arrived < number:
            assert time.monotonic() < until, f"pass {number} never came within {timeout:g} s: {self.arrived} did"
            await asyncio.sleep(0.01)

    def __enter__(self) -> HeldNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.open()
