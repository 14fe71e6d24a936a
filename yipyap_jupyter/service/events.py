"""The four events a generation produces; `model_dump()` of each is one SSE frame's JSON.

Every view (SSE, widgets, cell output, the kernel's server backend) consumes these
and nothing else, so they are the whole wire format of a generation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter

from ..errors import DiffusionError, ValidationError, error_body, error_from_body
from .validation import describe


class StatusEvent(BaseModel):
    """A state before or around the work: queued, loading, fell back to CPU.

    `restart` says that the steps so far are abandoned and the run starts over from its
    first step (after the accelerator ran out of memory mid-run): views drop what they drew.
    """

    type: Literal["status"] = "status"
    message: str
    model: str | None = Field(default=None, description="the model that will run (on the status that starts a run)")
    restart: bool = False


#: The state of a position of a step.
PositionState = Literal["masked", "unsettled", "settled", "edited"]


class StepEvent(BaseModel):
    """One denoising step.

    `text` is only what became final at the left-to-right front since the previous
    step frame, so the concatenated step texts equal `CompleteEvent.raw_text`;
    `canvas` is the whole region now, masks shown as the mask glyph. `states` gives each
    of `pieces` its state: "masked", "unsettled" (a real token that may still change),
    "settled" or "edited" (replaced after it settled); views draw each its own way.
    """

    type: Literal["step"] = "step"
    step: int
    total_steps: int
    text: str
    canvas: str
    progress: float
    pieces: list[str] = Field(default_factory=list)
    states: list[PositionState] = Field(default_factory=list)
    changed: list[int] = Field(default_factory=list)
    confidences: list[float] = Field(default_factory=list, description="the sampler's confidence per `changed` index")


class CompleteEvent(BaseModel):
    """The end of a successful generation; `text` is cleaned, `raw_text` is as generated."""

    type: Literal["complete"] = "complete"
    text: str
    raw_text: str
    history: list[str] = Field(default_factory=list)
    generation_time: float
    model_used: str
    device: str
    tokens: int
    steps: int
    options: dict[str, Any] = Field(default_factory=dict, description="the effective sampler options that ran")
    block_origin: int = Field(default=0, description="the position in the generated text (in tokens) its blocks of "
                              "`block_length` are counted from: 0, or less where the first block begins in the prompt")


class ErrorEvent(BaseModel):
    """The end of a failed generation: the error object (`errors.error_body`) of every failure."""

    type: Literal["error"] = "error"
    error_type: str
    message: str
    retryable: bool
    _error: DiffusionError | None = PrivateAttr(None)

    @classmethod
    def from_error(cls, failure: BaseException) -> ErrorEvent:
        """The frame of any failure (through `error_body`, so scrubbed); it remembers our exception itself."""
        event = cls(**error_body(failure))
        if isinstance(failure, DiffusionError):
            event._error = failure
        return event

    def to_error(self) -> DiffusionError:
        """The exception this frame stands for, so a remote error re-raises as the local one."""
        return self._error if self._error is not None else error_from_body(self.model_dump())

Event = Annotated[StatusEvent | StepEvent | CompleteEvent | ErrorEvent, Field(discriminator="type")]

_EVENT_ADAPTER: TypeAdapter[StatusEvent | StepEvent | CompleteEvent | ErrorEvent] = TypeAdapter(Event)


def event_from_dict(data: dict[str, Any]) -> StatusEvent | StepEvent | CompleteEvent | ErrorEvent:
    """Rebuild an event from a frame's JSON (raises `ValidationError` on an unknown shape)."""
    try:
        return _EVENT_ADAPTER.validate_python(data)
    except pydantic.ValidationError as error:
        raise ValidationError(f"malformed event: {describe(error)}") from None
