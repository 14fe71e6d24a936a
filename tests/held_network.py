"""A network whose forward passes wait at a gate until the test lets them through.

Tests that need a generation still running when the next thing happens (a Stop, an
interrupt, a request that queues or times out) hold the network instead of hoping that
a long run is long enough on this machine: what they assert then holds on a machine of
any speed. A pass that is held longer than `deadline` fails the generation with what it
waited for, so a test that forgets to let passes through ends instead of hanging.

`HeldNetwork` holds a network in the test's own process; `HeldChild` holds the network of a child
process (the CLI, a Jupyter server, a kernel) through two files, so that the child runs unchanged.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
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


class HeldChild:
    """The gate of a child process's network (the CLI, a Jupyter server, a kernel), held through two files.

    The child runs with `env()` added to its environment: tests/held_child/sitecustomize.py then holds each
    pass of its network while `allowed` is below the pass's number (its children share the count: Serve's
    replicas). The gate starts open; `hold(free)` closes
    it behind the next `free` passes, counted from the passes the child has made so far, and numbers later
    passes from there, as `HeldNetwork` does.
    """

    def __init__(self, folder: Path, network: str = "LLaDAModel", deadline: float = DEADLINE) -> None:
        self.folder = folder
        self.network = network
        self.deadline = deadline
        self.base = 0
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "allowed").unlink(missing_ok=True)

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` for the child: the gate's variables, and held_child/ first on its PYTHONPATH."""
        paths = [str(Path(__file__).parent / "held_child"), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        return {**env, "PYTHONPATH": os.pathsep.join(paths), "YIPYAP_HELD_GATE": str(self.folder),
                "YIPYAP_HELD_NETWORK": self.network, "YIPYAP_HELD_DEADLINE": str(self.deadline)}

    @property
    def passes(self) -> int:
        """Passes begun (held ones included) by the networks of every process that shares the gate."""
        try:
            return int((self.folder / "passes").read_text())
        except FileNotFoundError:
            return 0

    @property
    def allowed(self) -> float:
        try:
            return float((self.folder / "allowed").read_text())
        except FileNotFoundError:
            return math.inf

    def _set(self, allowed: float) -> None:
        written = self.folder / "allowed.new"
        written.write_text(str(allowed))
        written.replace(self.folder / "allowed")  # the child never reads a half-written number

    def hold(self, free: int = 0) -> None:
        """Let the next `free` passes through and hold the ones after; pass numbers now count from here."""
        self.base = self.passes
        self._set(self.base + free)

    def allow(self, passes: int = 1) -> None:
        """Let `passes` more passes through."""
        self._set(self.allowed + passes)

    def open(self) -> None:
        """Let every pass through from now on."""
        (self.folder / "allowed").unlink(missing_ok=True)

    def wait_held(self, number: int, timeout: float = DEADLINE) -> None:
        """Block until pass `number` (counted from `hold`) has reached the gate."""
        until = time.monotonic() + timeout
        while self.passes - self.base < number:
            assert time.monotonic() < until, (f"pass {number} never came within {timeout:g} s: "
                                              f"{self.passes - self.base} passes did")
            time.sleep(0.01)

    def step_until(self, done: Callable[[], bool], timeout: float = DEADLINE) -> int:
        """Let passes through one at a time, each once the one before is held, until `done()`; passes let through.

        For an event that reaches the child at an unknown moment (a signal, a click, a closed connection):
        the generation goes on at the test's pace, one pass per look at `done`, never running ahead of it.
        """
        until = time.monotonic() + timeout
        let_through = 0
        while not done():
            assert time.monotonic() < until, (f"not done within {timeout:g} s; {let_through} passes let through, "
                                              f"{self.passes - self.base} came")
            if self.passes > self.allowed:  # a pass waits at the gate: one more
                self.allow(1)
                let_through += 1
            time.sleep(0.01)
        return let_through

