"""All torch work on one thread: loads and every forward pass, whichever request thread asks, never recording gradients."""

from __future__ import annotations

import contextvars
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from yipyap_jupyter.engine.model import SamplingOptions
from yipyap_jupyter.engine.runtime import DiffusionModelManager, Status
from yipyap_jupyter.engine.runtime.engine_thread import engine_steps, on_engine_thread

OPTIONS = SamplingOptions(max_new_tokens=8, steps=4, block_length=8, seed=3)
request_name: contextvars.ContextVar[str] = contextvars.ContextVar("request_name", default="-")


def test_a_call_returns_its_result_or_raises_its_error_in_the_caller_context() -> None:
    request_name.set("mine")
    assert on_engine_thread(lambda a, b: (a + b, request_name.get()), 2, 3) == (5, "mine")
    with pytest.raises(ZeroDivisionError):
        on_engine_thread(lambda: 1 / 0)
    # a call made on the engine thread runs at once instead of waiting for itself
    inner = on_engine_thread(lambda: on_engine_thread(threading.current_thread))
    assert inner is on_engine_thread(threading.current_thread) is not threading.current_thread()


def test_steps_are_made_and_closed_on_the_engine_thread() -> None:
    made: list[threading.Thread] = []
    closed: list[threading.Thread] = []

    def items() -> Iterator[int]:
        try:
            for n in range(3):
                made.append(threading.current_thread())
                yield n
        finally:
            closed.append(threading.current_thread())

    steps = engine_steps(items())
    assert next(steps) == 0
    steps.close()
    engine = on_engine_thread(threading.current_thread)
    assert made == [engine] and closed == [engine]
    assert list(engine_steps(iter([1, 2]))) == [1, 2]


def test_concurrent_requests_run_every_forward_on_the_engine_thread_without_gradients(tiny_llada_dir: Path) -> None:
    manager = DiffusionModelManager()
    manager.load(str(tiny_llada_dir), device="cpu")
    network = manager.loaded_model.network  # type: ignore[union-attr]
    passes: list[tuple[threading.Thread, bool]] = []
    hook = network.register_forward_hook(
        lambda module, args, output: passes.append((threading.current_thread(), output.requires_grad)))
    texts: dict[str, str] = {}

    def generate(prompt: str) -> None:
        steps = [item for item in manager.generate(prompt, OPTIONS) if not isinstance(item, Status)]
        texts[prompt] = steps[-1].text

    try:
        threads = [threading.Thread(target=generate, args=(prompt,)) for prompt in ("def f(x):", "import os\n")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        hook.remove()
    assert len(texts) == 2
    engine = on_engine_thread(threading.current_thread)
    assert passes and all(thread is engine and not grad for thread, grad in passes)


def test_a_forked_child_has_an_engine_thread_of_its_own() -> None:
    on_engine_thread(int)  # the parent's engine thread is running
    pid = os.fork()
    if pid == 0:  # the child: a call must not wait for the parent's thread, which is not here
        signal.alarm(30)  # waiting for it would hang: fail instead
        os._exit(0 if on_engine_thread(lambda: 41 + 1) == 42 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
