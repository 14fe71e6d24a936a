"""The one run path: a worker thread's events fed to the state on the driving thread; interrupts and stops."""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator

import pytest
from live_events import complete, steps

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.kernel.live.runner import drive
from yipyap_jupyter.kernel.live.state import GenerationStopped, LiveGeneration
from yipyap_jupyter.kernel.render import Context
from yipyap_jupyter.service.events import CompleteEvent, StepEvent


def test_interrupt_cancels_the_one_worker_and_keeps_the_partial_result() -> None:
    """A KeyboardInterrupt in the main thread (what a kernel interrupt raises) stops the source at a step."""
    # a shell running pytest in the background ignores SIGINT, and then interrupt_main() does nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = threading.Event()
    threads = []

    def source(cancel: CancelToken) -> Iterator[StepEvent]:
        threads.append(threading.current_thread())
        try:
            for step, event in enumerate(steps(1000), start=1):
                cancel.raise_if_cancelled(step)
                yield event
                if step == 3:
                    _thread.interrupt_main()
                cancel._event.wait(0.01)
        finally:
            finished.set()

    live = LiveGeneration()
    live.begin(Context())
    try:
        drive(source, live)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished.is_set() and not threads[0].is_alive() and threads[0] is not threading.main_thread()
    assert live.state == "stopped" and live.line.startswith("stopped at step ") and live.line.endswith(" of 1000")
    assert 2 <= live.result.steps < 1000 and live.result.text.startswith("w0 w1 ")
    with pytest.raises(GenerationStopped):
        live.outcome()


def test_a_stop_from_another_thread_ends_the_run_as_stopped() -> None:
    """What a panel's Stop does: cancel the token while `drive` runs in the panel's background job."""
    started = threading.Event()

    def source(cancel: CancelToken) -> Iterator[StepEvent]:
        for step, event in enumerate(steps(1000), start=1):
            cancel.raise_if_cancelled(step)
            yield event
            started.set()
            cancel._event.wait(0.01)

    live, cancel = LiveGeneration(), CancelToken()
    live.begin(Context())
    job = threading.Thread(target=drive, args=(source, live, cancel))
    job.start()
    assert started.wait(10)
    cancel.cancel()
    job.join(10)
    assert not job.is_alive() and live.state == "stopped" and 1 <= live.result.steps < 1000


def test_tick_runs_while_no_event_comes() -> None:
    """A renderer's held-back frame is drawn while the source is quiet."""
    ticks = []
    release = threading.Event()

    def source(cancel: CancelToken) -> Iterator[StepEvent | CompleteEvent]:
        yield steps(2)[0]
        release.wait(10)  # quiet until the driving thread has ticked three times
        yield steps(2)[1]
        yield complete(2)

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 3:
            release.set()

    live = LiveGeneration()
    live.begin(Context())
    drive(source, live, tick=tick, interval=0.01)
    assert len(ticks) >= 3 and live.state == "done" and live.result.text == "w0 w1"
