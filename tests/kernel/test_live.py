"""The worker-thread loop behind live cells: throttling, results, errors, and interrupts."""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Iterator

import pytest

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.constants import MASK_GLYPH
from yipyap_jupyter.errors import GenerationCancelled, ModelUnavailableError
from yipyap_jupyter.kernel.live import Throttle, live_bundle, run_live
from yipyap_jupyter.kernel.render import Context
from yipyap_jupyter.kernel.result import ResultBuilder
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


def complete(n: int) -> CompleteEvent:
    text = "".join(f"w{k} " for k in range(n))
    return CompleteEvent(text=text.strip(), raw_text=text, history=[e.canvas for e in steps(n)],
                         generation_time=0.25, model_used="tiny", device="cpu", tokens=n, steps=n)


def test_throttle_lets_one_action_through_per_interval() -> None:
    now = [0.0]
    throttle = Throttle(0.1, clock=lambda: now[0])
    seen = []
    for tick in range(30):  # a step every 10 ms for 300 ms
        now[0] = tick * 0.01
        seen.append(throttle.ready())
    assert [i for i, ready in enumerate(seen) if ready] == [0, 10, 20]


def test_run_live_returns_the_result_with_every_frame() -> None:
    events = [StatusEvent(message="starting"), *steps(4), complete(4)]
    result = run_live(lambda cancel: iter(events), Context(before="p: "), live=False)
    assert result.text == "w0 w1 w2 w3" and result.raw_text == "w0 w1 w2 w3 "
    assert [f.step for f in result.frames] == [1, 2, 3, 4]
    assert result.filled == "p: w0 w1 w2 w3"
    assert repr(result).splitlines()[-1] == "4 tokens · 4 steps · 0.25 s · tiny · cpu"


def test_error_event_raises_its_category() -> None:
    events = [StatusEvent(message="starting"),
              ErrorEvent(error_type="model_unavailable", message="no model loaded", retryable=False)]
    with pytest.raises(ModelUnavailableError, match="no model loaded"):
        run_live(lambda cancel: iter(events), Context(), live=False)


def test_stream_ending_early_counts_as_cancelled() -> None:
    with pytest.raises(GenerationCancelled) as stopped:
        run_live(lambda cancel: iter(steps(3)[:2]), Context(), live=False)
    assert stopped.value.step == 2


def test_interrupt_cancels_the_worker_and_reraises() -> None:
    """A KeyboardInterrupt in the main thread (what a kernel interrupt raises) stops the source."""
    # a shell running pytest in the background ignores SIGINT, and then interrupt_main() does nothing
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = threading.Event()

    def source(cancel: CancelToken) -> Iterator[StepEvent]:
        try:
            for step, event in enumerate(steps(1000), start=1):
                cancel.raise_if_cancelled(step)
                yield event
                if step == 3:
                    _thread.interrupt_main()
                cancel._event.wait(0.01)
        finally:
            finished.set()

    try:
        with pytest.raises(KeyboardInterrupt):
            run_live(source, Context(), live=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert finished.is_set()


def test_live_bundle_shows_status_then_canvas() -> None:
    builder = ResultBuilder(Context(before="p"))
    builder.feed(StatusEvent(message="loading tiny"))
    assert live_bundle(builder, 0.0)["text/plain"] == "loading tiny"
    builder.feed(steps(2)[0])
    bundle = live_bundle(builder, 0.0, "cancelled at step 1", error=True)
    assert bundle["text/plain"].startswith(f"w0 {MASK_GLYPH}\nstep 1/2")
    assert bundle["text/plain"].endswith("cancelled at step 1")
    assert "#b3261e" in bundle["text/html"]
