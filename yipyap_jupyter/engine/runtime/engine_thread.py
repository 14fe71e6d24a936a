"""The one thread that runs the engine's torch work: model loads and moves, forward passes, sampler steps.

Why: PyTorch's CPU kernels run on OpenMP, and libgomp gives every thread that opens a
parallel region a team of worker threads of its own. Once the process holds more OpenMP
threads than CPUs, libgomp stops letting idle workers spin between regions, and every
parallel op then waits for futex wake-ups: on 2 cores a forward pass of `tiny` took 1.6x
as long on a second thread as on the first. Requests still run on their callers' threads
(the service's design); their torch work runs here, so one team does all of it.
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_here = threading.local()
_executor: ThreadPoolExecutor


def _new_executor() -> None:
    """The engine thread's executor; a forked child starts a fresh one (the parent's thread is not in it)."""
    global _executor
    _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yipyap-engine")


_new_executor()
os.register_at_fork(after_in_child=_new_executor)


def on_engine_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` run on the engine thread (in the caller's context, so its log fields follow); its result or error."""
    if getattr(_here, "engine", False):
        return fn(*args)
    return _executor.submit(contextvars.copy_context().run, _as_engine, fn, *args).result()


def engine_steps(iterator: Iterator[T]) -> Iterator[T]:
    """The items of `iterator`, each made on the engine thread (and closed there)."""
    try:
        while True:
            try:
                item = on_engine_thread(next, iterator)
            except StopIteration:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            on_engine_thread(close)


def _as_engine(fn: Callable[..., T], *args: Any) -> T:
    _here.engine = True
    return fn(*args)
