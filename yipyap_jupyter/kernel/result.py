"""What a finished generation hands back to the notebook: text, history, timings.

A `DiffusionResult` is the value of a `%%diffuse` cell and of
`DiffusionClient.generate` / `.infill`: it renders as HTML in a notebook and
as text with a summary line in a terminal, and keeps every step for `replay()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import GenerationCancelled
from .render import Context, summary_line, text_html

if TYPE_CHECKING:
    from ..service.events import CompleteEvent, Event, StepEvent


@dataclass
class DiffusionResult:
    """A finished generation or infilling.

    Attributes:
        text: the final text (after `auto_trim` / `fix_punctuation`).
        raw_text: the text as generated.
        history: the canvas after each step, masks shown as the mask glyph.
        generation_time: seconds the model worked.
        model: the model that wrote it; device: where it ran.
        tokens: tokens generated; steps: denoising steps taken.
        context: the prompt, or the infill's prefix and suffix.
        frames: every step event (pieces and changed positions) for `replay()`.
    """

    text: str
    raw_text: str
    history: list[str]
    generation_time: float
    model: str
    device: str
    tokens: int
    steps: int
    context: Context = field(default_factory=Context)
    frames: list[StepEvent] = field(default_factory=list, repr=False)

    @classmethod
    def from_events(cls, complete: CompleteEvent, context: Context, frames: list[StepEvent]) -> DiffusionResult:
        return cls(
            text=complete.text,
            raw_text=complete.raw_text,
            history=list(complete.history),
            generation_time=complete.generation_time,
            model=complete.model_used,
            device=complete.device,
            tokens=complete.tokens,
            steps=complete.steps,
            context=context,
            frames=list(frames),
        )

    @property
    def summary(self) -> str:
        """`N tokens · S steps · T s · model · device`."""
        return summary_line(self.tokens, self.steps, self.generation_time, self.model, self.device)

    @property
    def filled(self) -> str:
        """The whole text: prompt + generation, or prefix + infill + suffix."""
        return self.context.before + self.text + self.context.after

    def replay(self) -> Any:
        """A slider over the steps of this generation (an ipywidgets panel)."""
        from .panels.replay import ReplayPanel

        return ReplayPanel(self)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"{self.text}\n{self.summary}"

    def _repr_html_(self) -> str:
        return text_html(self.context, self.text, self.summary)


class ResultBuilder:
    """Folds a stream of events into a `DiffusionResult`, keeping what a live view needs on the way."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.frames: list[StepEvent] = []
        self.status = ""
        self.complete: CompleteEvent | None = None
        self.error: Event | None = None

    @property
    def last_frame(self) -> StepEvent | None:
        return self.frames[-1] if self.frames else None

    def feed(self, event: Event) -> None:
        if event.type == "step":
            self.frames.append(event)
        elif event.type == "status":
            self.status = event.message
        elif event.type == "complete":
            self.complete = event
        else:
            self.error = event

    def result(self) -> DiffusionResult:
        """The result; the stream's error re-raised as its `DiffusionError`; `GenerationCancelled` if it stopped early."""
        if self.error is not None:
            raise self.error.to_error()
        if self.complete is None:
            raise GenerationCancelled(self.frames[-1].step if self.frames else 0)
        return DiffusionResult.from_events(self.complete, self.context, self.frames)
