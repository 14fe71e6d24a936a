"""Turn the engine's decoded steps into `step` events with incremental text.

A step's `text` is what became final at the left-to-right front since the last
frame. Text that may still change when the next token settles (trailing
whitespace, half of a multi-byte character) is held back until it is stable, so
the concatenated step texts equal the generation's final raw text.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from .events import PositionState, StepEvent

if TYPE_CHECKING:
    from ..engine.decoder import GenerationStep

#: A tail that the next settled token may still rewrite: whitespace (tokenizer clean-up) or U+FFFD (partial UTF-8).
_UNSTABLE_TAIL = re.compile(r"[\s\ufffd]+$")


class StepFrames:
    """Stateful converter for one generation; `history` collects every step's canvas."""

    def __init__(self) -> None:
        self.emitted = ""
        self.history: list[str] = []
        self.last: GenerationStep | None = None

    def restart(self) -> None:
        """Forget the run so far: the manager starts it over (on the CPU, after accelerator out-of-memory).

        The text of the abandoned run is not repeated, nor kept in `history`.
        """
        self.emitted, self.history, self.last = "", [], None

    def frame(self, step: GenerationStep) -> StepEvent:
        """The `step` event for `step`."""
        finished = step.progress >= 1.0
        delta = self._delta(step.settled_text, finished)
        self.emitted += delta
        self.history.append(step.canvas)
        self.last = step
        return self._event(step, delta)

    def closing_frame(self) -> StepEvent | None:
        """A last frame carrying any raw text not yet sent (only when the final step left some)."""
        if self.last is None:
            return None
        raw = self.last.text
        if raw == self.emitted or not raw.startswith(self.emitted):
            return None
        delta = raw[len(self.emitted):]
        self.emitted = raw
        return self._event(self.last, delta)

    def _delta(self, settled: str, finished: bool) -> str:
        if not settled.startswith(self.emitted):
            return ""
        new = settled[len(self.emitted):]
        return new if finished else _UNSTABLE_TAIL.sub("", new)

    @staticmethod
    def _event(step: GenerationStep, delta: str) -> StepEvent:
        return StepEvent(
            step=step.step,
            total_steps=step.total_steps,
            text=delta,
            canvas=step.canvas,
            progress=step.progress,
            pieces=list(step.pieces),
            states=[cast(PositionState, state) for state in step.states],
            changed=list(step.changed),
            confidences=list(step.confidences),
        )
