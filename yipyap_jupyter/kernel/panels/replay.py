"""`ReplayPanel`: step through a finished generation with a slider (`%diffuse replay`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..render import canvas_html, footer_html, text_html
from .base import Panel

if TYPE_CHECKING:
    from ..result import DiffusionResult


class ReplayPanel(Panel):
    """One slider position per denoising step; the last position is the final text."""

    title = "replay"

    def __init__(self, result: DiffusionResult) -> None:
        self.result = result
        steps = max(len(result.frames), len(result.history))
        self.slider = widgets.IntSlider(value=steps, min=1, max=max(steps, 1), description="step")
        self.canvas = widgets.HTML(value="")
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = widgets.VBox([self.slider, self.canvas])
        self.show(self.slider.value)

    def __repr__(self) -> str:
        return f"<ReplayPanel: {len(self.result.frames) or len(self.result.history)} steps of {self.result.model}>"

    def show(self, step: int) -> None:
        """Draw step `step` (1-based): highlighted tokens from the stream, else the history text."""
        result = self.result
        if result.frames:
            frame = result.frames[step - 1]
            footer = f"step {frame.step}/{frame.total_steps}"
            self.canvas.value = canvas_html(result.context, frame.pieces, frame.changed, footer, frame.states)
        elif result.history:
            footer = f"step {step}/{len(result.history)}"
            self.canvas.value = text_html(result.context, result.history[step - 1], footer)
        else:
            self.canvas.value = footer_html("no steps recorded")
