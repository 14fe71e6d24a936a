"""The live-generation state: events folded into traits, the status line, how a run ends."""

from __future__ import annotations

import pytest
from live_events import Clock, complete, steps

from yipyap_jupyter.constants import MASK_GLYPH
from yipyap_jupyter.errors import GenerationCancelled, GenerationError, ModelUnavailableError
from yipyap_jupyter.kernel.live.state import GenerationStopped, LiveGeneration
from yipyap_jupyter.kernel.render import Context
from yipyap_jupyter.service.events import ErrorEvent, StatusEvent


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


def ended(last: object, failure: BaseException | None) -> tuple[str, str | None]:
    """How a run of two steps, then `last` (an event or None), ended with `failure`: its state and error class."""
    live = LiveGeneration()
    live.begin(Context())
    for event in [*steps(2), *([last] if last is not None else [])]:
        live.feed(event)
    live.finish(failure)
    return live.state, type(live.error).__name__ if live.error is not None else None


def test_a_run_ends_by_its_last_event_or_its_failure() -> None:
    assert ended(complete(2), None) == ("done", None)
    assert ended(ErrorEvent(error_type="model_unavailable", message="gone", retryable=False), None) == (
        "failed", ModelUnavailableError.__name__)
    assert ended(None, GenerationCancelled(2)) == ("stopped", None)
    assert ended(None, None) == ("stopped", None)  # a stream that ended without its last event
    assert ended(None, RuntimeError("secret prompt text")) == ("failed", GenerationError.__name__)


def test_outcome_raises_a_stop_with_the_partial_result() -> None:
    live = LiveGeneration()
    live.begin(Context(before="p"))
    live.feed(steps(2)[0])
    live.finish(None)
    with pytest.raises(GenerationStopped) as stopped:
        live.outcome()
    assert (stopped.value.result.text, stopped.value.result.stopped_of) == ("w0 ", 2)
