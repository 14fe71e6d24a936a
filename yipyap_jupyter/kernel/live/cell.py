"""The `%%diffuse` cell's renderer: a live generation drawn in one display of the running cell.

The cell display starts empty (nbval compares nothing in it) and gives way to the
result, the cell's value: nbval ignores in-place updates, so a display that changed
in place would never match the stored notebook. A stopped run raises
`GenerationStopped`, which the magics show as one line.
"""

from __future__ import annotations

from typing import Any

from ..render import Context, canvas_html, canvas_text
from ..result import DiffusionResult
from .runner import EventSource, drive
from .state import LiveGeneration
from .throttle import UPDATE_INTERVAL, Throttle


def in_kernel() -> bool:
    """Whether we run in a Jupyter kernel (where displays update in place), not a terminal."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def live_bundle(generation: LiveGeneration, footer: str | None = None) -> dict[str, str]:
    """The display data (HTML + plain text) of a generation now; `footer` defaults to its status line."""
    footer = generation.line if footer is None else footer
    if not generation.frames:
        return {"text/html": canvas_html(generation.context, [], [], footer), "text/plain": footer}
    return {"text/html": canvas_html(generation.context, generation.pieces, generation.changed, footer,
                                     generation.states),
            "text/plain": canvas_text(generation.pieces, footer, generation.states)}


class CellDisplay:
    """Draws a `LiveGeneration` into one display of the running cell; every call on the main thread.

    Steps are redrawn at most once per interval (`tick` draws one held back); the last
    step is always drawn, then the display gives way to the result, or to the error
    output (one place for an error); a stopped run keeps its partial canvas.
    """

    def __init__(self, generation: LiveGeneration, interval: float = UPDATE_INTERVAL) -> None:
        from IPython.display import display

        self.generation = generation
        self.throttle = Throttle(interval)
        self.dirty = False
        self.handle = display({}, raw=True, display_id=True)
        generation.observe(self._stepped, names="step")
        generation.observe(self._status, names="status")
        generation.observe(self._ended, names="state")

    def tick(self) -> None:
        """Draw a step the throttle held back, once its interval has passed."""
        if self.dirty and self.throttle.ready():
            self._draw()

    def _draw(self, footer: str | None = None) -> None:
        self.handle.update(live_bundle(self.generation, footer), raw=True)
        self.dirty = False

    def _stepped(self, _change: dict[str, Any]) -> None:
        self.dirty = True
        self.tick()

    def _status(self, _change: dict[str, Any]) -> None:
        if self.generation.state == "running":
            self._draw()  # rare and always worth showing

    def _ended(self, change: dict[str, Any]) -> None:
        from IPython.display import clear_output

        generation = self.generation
        if change["new"] == "stopped":
            self._draw(footer="")  # the partial canvas; the stop line is the cell's error output
        elif change["new"] == "done":
            self._draw()  # the last canvas, always: the result continues the prompt exactly as it shows
            self.handle.update({"text/html": generation.result._repr_html_(), "text/plain": repr(generation.result)},
                               raw=True)
            clear_output(wait=True)  # the result (the cell's value) replaces the live display
        elif change["new"] == "failed":
            clear_output(wait=True)  # the error output replaces it: an error is shown once


def run_live(source: EventSource, context: Context, *, live: bool = True,
             interval: float = UPDATE_INTERVAL) -> DiffusionResult:
    """Run a generation, drawing it in the running cell when `live` and in a kernel; return its result.

    Raises the failure's `DiffusionError`, or `GenerationStopped` (with the partial
    result) when the kernel was interrupted.
    """
    generation = LiveGeneration()
    cell = CellDisplay(generation, interval) if live and in_kernel() else None
    generation.begin(context)
    drive(source, generation, tick=cell.tick if cell is not None else lambda: None, interval=interval)
    return generation.outcome()
