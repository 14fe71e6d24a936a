"""The live-generation object and the worker-thread loop behind live cells: state, results, errors, stops."""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator

import pytest

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.constants import MASK_GLYPH
from yipyap_jupyter.errors import GenerationError, ModelUnavailableError
from yipyap_jupyter.kernel.live import (
    GenerationStopped,
    LiveGeneration,
    Throttle,
    drive,
    run_live,
)
from yipyap_jupyter.kernel.render import Context
from yipyap_jupyter.service.events import (
    CompleteEvent,
    ErrorEvent,
    StatusEvent,
    StepEvent,
)


def steps(n: int) -> list[StepEvent]:
    pieces = [MASK_GLYPH] * n
    events = []
    for k in range(n):
        pieces[k] = f"w{k} "
        events.append(StepEvent(step=k + 1, total_steps=n, text=f"w{k} ", canvas="".join(pieces),
                                progress=(k + 1) / n, pieces=list(pieces), changed=[k]))
    return events


def complete(n: int, **fields: object) -> CompleteEvent:
    text = "".join(f"w{k} " for k in range(n))
    return CompleteEvent(text=text.strip(), raw_text=text, history=[e.canvas for e in steps(n)],
                         generation_time=0.25, model_used="tiny", device="cpu", tokens=n, steps=n, **fields)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_lets_one_action_through_per_interval() -> None:
    clock = Clock()
    throttle = Throttle(0.1, clock=clock)
    seen = []
    for tick in range(30):  # a step every 10 ms for 300 ms
        clock.now = tick * 0.01
        seen.append(throttle.ready())
    assert [i for i, ready in enumerate(seen) if ready] == [0, 10, 20]


def test_status_follows_the_run_and_the_rate_counts_committed_tokens() -> None:
    clock = Clock()
    live = LiveGeneration(clock=clock)
    live.begin(Context(before="p"))
    assert live.line == "starting…"
    live.feed(StatusEvent(message="loading tiny"))
    assert live.line == "loading tiny"
    clock.now = 5.0  # loading took five seconds: not counted in the rate
    live.feed(steps(4)[0])
    assert live.line == "step 1/4"
    clock.now = 6.0
    live.feed(steps(4)[1])
    assert live.line == "step 2/4 · 2.0 tok/s"  # two committed tokens in the one second since step 1
    live.feed(StatusEvent(message="out of memory on cuda; continuing on cpu"))
    assert live.line == "step 2/4 · 2.0 tok/s · out of memory on cuda; continuing on cpu"


def test_a_restart_drops_the_abandoned_runs_steps() -> None:
    live = LiveGeneration()
    live.begin(Context())
    for event in steps(3)[:2]:
        live.feed(event)
    live.feed(StatusEvent(message="out of memory on cuda; continuing on cpu", restart=True))
    assert (live.frames, live.pieces, live.step, live.committed) == ([], [], 0, 0)
    assert live.line == "out of memory on cuda; continuing on cpu"
    for event in steps(3):
        live.feed(event)
    live.feed(complete(3))
    live.finish(None)
    assert [frame.step for frame in live.outcome().frames] == [1, 2, 3]


def test_observers_see_each_step_with_its_pieces() -> None:
    live = LiveGeneration()
    seen = []
    live.observe(lambda change: seen.append((change["new"], list(live.pieces), live.committed)), names="step")
    live.begin(Context())
    for event in steps(2):
        live.feed(event)
    assert seen == [(1, ["w0 ", MASK_GLYPH], 1), (2, ["w0 ", "w1 "], 2)]


def test_run_live_returns_the_result_with_every_frame_and_the_options() -> None:
    events = [StatusEvent(message="starting"), *steps(4),
              complete(4, options={"steps": 4, "seed": 0, "cache": None}, block_origin=-3)]
    result = run_live(lambda cancel: iter(events), Context(before="p: "), live=False)
    assert result.text == "w0 w1 w2 w3" and result.raw_text == "w0 w1 w2 w3 " and result.block_origin == -3
    assert [f.step for f in result.frames] == [1, 2, 3, 4]
    assert result.filled == "p: w0 w1 w2 w3"
    assert repr(result).splitlines()[-2:] == ["4 tokens · 4 steps · 0.25 s · tiny · cpu", "steps 4 · seed 0"]


def test_error_event_raises_its_category() -> None:
    events = [StatusEvent(message="starting"),
              ErrorEvent(error_type="model_unavailable", message="no model loaded", retryable=False)]
    with pytest.raises(ModelUnavailableError, match="no model loaded"):
        run_live(lambda cancel: iter(events), Context(), live=False)


def test_a_bug_in_the_source_becomes_a_generation_error_without_its_text() -> None:
    def source(cancel: CancelToken) -> Iterator[StepEvent]:
        yield steps(2)[0]
        raise RuntimeError("secret prompt text")

    with pytest.raises(GenerationError) as failed:
        run_live(source, Context(), live=False)
    assert "secret" not in failed.value.message and "correlation id" in failed.value.message


def test_stream_ending_early_is_a_stop_with_the_partial_text() -> None:
    with pytest.raises(GenerationStopped) as stopped:
        run_live(lambda cancel: iter(steps(3)[:2]), Context(before="p"), live=False)
    assert str(stopped.value) == "stopped at step 2 of 3"
    partial = stopped.value.result
    assert (partial.text, partial.steps, partial.stopped_of) == ("w0 w1 ", 2, 3)
    assert partial.summary.startswith("stopped at step 2 of 3 · ")


def test_a_stopped_run_keeps_the_name_of_its_model() -> None:
    """The service's first status names the model, so a replay after an interrupt says whose steps it shows."""
    from yipyap_jupyter.kernel.panels import ReplayPanel

    events = [StatusEvent(message="Starting text generation...", model="tiny"), *steps(3)[:2]]
    with pytest.raises(GenerationStopped) as stopped:
        run_live(lambda cancel: iter(events), Context(before="p"), live=False)
    assert stopped.value.result.model == "tiny"
    assert repr(ReplayPanel(stopped.value.result)) == "<ReplayPanel: 2 steps of tiny>"


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
    try:
        drive(source, live, Context())
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished.is_set() and not threads[0].is_alive() and threads[0] is not threading.main_thread()
    assert live.state == "stopped" and live.line.startswith("stopped at step ") and live.line.endswith(" of 1000")
    assert 2 <= live.result.steps < 1000 and live.result.text.startswith("w0 w1 ")
    with pytest.raises(GenerationStopped):
        live.outcome()
