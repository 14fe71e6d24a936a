"""Events survive the trip through JSON (the kernel's server backend rebuilds them from SSE frames)."""

from __future__ import annotations

import json

import pytest

from yipyap_jupyter.errors import GenerationTimeoutError, NetworkError, ValidationError
from yipyap_jupyter.service.events import (
    CompleteEvent,
    ErrorEvent,
    StatusEvent,
    StepEvent,
    event_from_dict,
)

EVENTS = [
    StatusEvent(message="queued: 1 request ahead"),
    StepEvent(step=1, total_steps=4, text="Once", canvas="Once ▒▒", progress=0.25, pieces=["Once", "▒"], changed=[0]),
    CompleteEvent(text="Once.", raw_text="Once. ", history=["Once ▒▒"], generation_time=0.1, model_used="tiny",
                  device="cpu", tokens=3, steps=4),
    ErrorEvent(error_type="timeout", message="too slow", retryable=True),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_round_trip_through_json(event: object) -> None:
    frame = json.dumps(event.model_dump())  # type: ignore[attr-defined]
    assert event_from_dict(json.loads(frame)) == event


@pytest.mark.parametrize("frame", [{"type": "nonsense"}, {"type": "step", "step": 1}, {"message": "no type"}])
def test_malformed_frames_are_validation_errors(frame: dict) -> None:
    with pytest.raises(ValidationError):
        event_from_dict(frame)


def test_error_event_re_raises_as_its_category() -> None:
    assert isinstance(ErrorEvent(error_type="timeout", message="m", retryable=True).to_error(), GenerationTimeoutError)
    network = ErrorEvent(error_type="network", message="m", retryable=False).to_error()
    assert isinstance(network, NetworkError) and network.retryable is False
    assert ErrorEvent.from_error(GenerationTimeoutError("late")).model_dump() == {
        "type": "error", "error_type": "timeout", "message": "late", "retryable": True}
