"""Holds a child process's network at a gate made of two files that the test controls (held_network.HeldChild).

A test that runs the real CLI, Jupyter server, kernel or Serve replicas in child processes puts this folder on
their PYTHONPATH and names a gate folder in YIPYAP_HELD_GATE; Python imports this module when each starts.
Every forward pass of a network whose class is YIPYAP_HELD_NETWORK then counts itself in `<gate>/passes`
(one count for all the processes that share the gate) and waits while `<gate>/allowed` holds a smaller number
(no `allowed` file: the gate is open). Only the network's pace changes: the children run their own code paths
unchanged. A pass held longer than YIPYAP_HELD_DEADLINE seconds fails with what it waited for, so a child
never hangs on a test that forgot to let it through. The hook is registered when the process imports torch,
so processes that never do (Ray's own helpers, a Jupyter server without the model) are left as they are.
"""

from __future__ import annotations

import os

GATE = os.environ.get("YIPYAP_HELD_GATE")

if GATE:
    import fcntl
    import importlib
    import importlib.abc
    import importlib.machinery
    import sys
    import time
    from pathlib import Path
    from typing import Any

    _gate = Path(GATE)
    _network = os.environ.get("YIPYAP_HELD_NETWORK", "LLaDAModel")
    _deadline = float(os.environ.get("YIPYAP_HELD_DEADLINE", "120"))

    def _allowed() -> float:
        try:
            return float((_gate / "allowed").read_text())
        except FileNotFoundError:
            return float("inf")

    def _count() -> int:
        """This pass's number among all passes through the gate, from every process that shares it."""
        with open(_gate / "passes.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            passes = _gate / "passes"
            number = int(passes.read_text()) + 1 if passes.exists() else 1
            written = _gate / f"passes.{os.getpid()}"
            written.write_text(str(number))
            written.replace(passes)  # whole numbers only: the test never reads a half-written file
            return number

    def _hold(module: Any, args: Any) -> None:
        if type(module).__name__ != _network:
            return
        number = _count()
        until = time.monotonic() + _deadline
        while _allowed() < number:
            if time.monotonic() > until:
                raise TimeoutError(f"pass {number} was held {_deadline:g} s and never let through "
                                   f"(the gate at {_gate} allows {_allowed():g})")
            time.sleep(0.005)

    class _OnTorchImport(importlib.abc.MetaPathFinder):
        """Finds torch as usual, and registers `_hold` on every module once torch has been imported."""

        def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
            if name != "torch":
                return None
            sys.meta_path.remove(self)
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            load = spec.loader.exec_module

            def exec_module(module: Any) -> None:
                load(module)
                importlib.import_module("torch.nn.modules.module").register_module_forward_pre_hook(_hold)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, _OnTorchImport())
