"""Holds a child process's network at a gate made of two files that the test controls (held_network.HeldChild).

A test that runs the real CLI, Jupyter server or kernel in a child process puts this folder on the child's
PYTHONPATH and names a gate folder in YIPYAP_HELD_GATE; Python imports this module when the child starts.
Every forward pass of a network whose class is YIPYAP_HELD_NETWORK then writes how many such passes have
come to `<gate>/passes`, and waits while `<gate>/allowed` holds a smaller number (no `allowed` file: the
gate is open). Only the network's pace changes: the child runs its own code paths unchanged. A pass held
longer than YIPYAP_HELD_DEADLINE seconds fails with what it waited for, so a child never hangs on a test
that forgot to let it through.
"""

from __future__ import annotations

import os

GATE = os.environ.get("YIPYAP_HELD_GATE")

if GATE:
    import threading
    import time
    from pathlib import Path
    from typing import Any

    import torch

    _gate = Path(GATE)
    _network = os.environ.get("YIPYAP_HELD_NETWORK", "LLaDAModel")
    _deadline = float(os.environ.get("YIPYAP_HELD_DEADLINE", "120"))
    _count = 0
    _counting = threading.Lock()

    def _allowed() -> float:
        try:
            return float((_gate / "allowed").read_text())
        except FileNotFoundError:
            return float("inf")

    def _hold(module: Any, args: Any) -> None:
        global _count
        if type(module).__name__ != _network:
            return
        with _counting:
            _count += 1
            number = _count
            written = _gate / f"passes.{os.getpid()}"
            written.write_text(str(number))
            written.replace(_gate / "passes")  # whole numbers only: the test never reads a half-written file
        until = time.monotonic() + _deadline
        while _allowed() < number:
            if time.monotonic() > until:
                raise TimeoutError(f"pass {number} was held {_deadline:g} s and never let through "
                                   f"(the gate at {_gate} allows {_allowed():g})")
            time.sleep(0.005)

    torch.nn.modules.module.register_module_forward_pre_hook(_hold)
