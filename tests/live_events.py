"""The events of a made-up generation, and a clock moved by hand, for the live display's tests."""

from __future__ import annotations

from yipyap_jupyter.constants import MASK_GLYPH
from yipyap_jupyter.service.events import CompleteEvent, StepEvent


def steps(n: int) -> list[StepEvent]:
    """`n` steps that settle one word each, left to right."""
    pieces = [MASK_GLYPH] * n
    events = []
    for k in range(n):
        pieces[k] = f"w{k} "
        events.append(StepEvent(step=k + 1, total_steps=n, text=f"w{k} ", canvas="".join(pieces),
                                progress=(k + 1) / n, pieces=list(pieces), changed=[k]))
    return events


def complete(n: int, **fields: object) -> CompleteEvent:
    """The end of `steps(n)`."""
    text = "".join(f"w{k} " for k in range(n))
    return CompleteEvent(text=text.strip(), raw_text=text, history=[e.canvas for e in steps(n)],
                         generation_time=0.25, model_used="tiny", device="cpu", tokens=n, steps=n, **fields)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
