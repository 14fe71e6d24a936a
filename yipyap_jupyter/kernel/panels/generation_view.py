"""The live part of the generator and infiller panels: canvas, progress bar, status line, decode order.

A renderer of `LiveGeneration`, like the `%%diffuse` cell: a background job
runs the generation (`live.runner.drive`, see `jobs`), and this view observes its
traits, redrawing the canvas at most about ten times a second. The one status
line follows the run (starting, loading, `step k/N · x tok/s`, a fall back to
CPU) and ends with the summary, "stopped at step k of N", or the failure's
category: each error is shown there and nowhere else.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ...errors import DiffusionError
from ..live.runner import EventSource, drive
from ..live.state import LiveGeneration
from ..live.throttle import Throttle
from ..render import Context, canvas_html, decode_order_html, footer_html, text_html
from ..result import DiffusionResult
from .jobs import BackgroundJob


class GenerationView:
    """Shows one generation at a time; `start` returns at once, `stop` cancels, `wait` blocks."""

    def __init__(self, name: str) -> None:
        self.generation = LiveGeneration()
        self.canvas = widgets.HTML(value="")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="50%"))
        self.status = widgets.HTML(value="")
        self.decode_order = widgets.ToggleButton(value=False, description="decode order", icon="paint-brush",
                                                 tooltip="colour each token by the step that committed it",
                                                 disabled=True)
        self.widget = widgets.VBox([self.canvas, widgets.HBox([self.progress, self.decode_order]), self.status])
        self.job = BackgroundJob(name)
        self._throttle = Throttle()
        self.generation.observe(self._stepped, names="step")
        self.generation.observe(self._status, names="status")
        self.generation.observe(self._ended, names="state")
        self.decode_order.observe(lambda _: self._show_result(), names="value")

    @property
    def result(self) -> DiffusionResult | None:
        """The last finished run (None while running, after a failure or a stop)."""
        generation = self.generation
        return generation.result if generation.state == "done" else None

    @property
    def error(self) -> Any:
        """The last run's failure, a `DiffusionError`, or None."""
        return self.generation.error

    def on_running(self, callback: Any) -> None:
        """Call `callback(running)` when a generation starts and when it ends."""
        self.generation.observe(lambda change: callback(change["new"] == "running"), names="state")

    def start(self, source: EventSource, context: Context) -> bool:
        """Start running `source(cancel)` in the background; False if a generation is still running."""
        if self.job.running:
            return False
        self.generation.begin(context)
        return self.job.start(lambda cancel: drive(source, self.generation, cancel))

    def stop(self) -> None:
        self.job.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the generation ends (for scripts and tests); True if it has."""
        return self.job.wait(timeout)

    def refuse(self, error: DiffusionError) -> None:
        """End at once with `error` (a request the panel could not build), shown as any failure is."""
        if not self.job.running:
            self.generation.begin(Context())
            self.generation.finish(error)

    def _stepped(self, _change: dict[str, Any]) -> None:
        if self._throttle.ready():
            self._draw()

    def _status(self, _change: dict[str, Any]) -> None:
        if self.generation.state == "running":
            self.status.value = footer_html(self.generation.line)

    def _draw(self) -> None:
        generation = self.generation
        with self.canvas.hold_sync(), self.status.hold_sync():
            self.canvas.value = canvas_html(generation.context, generation.pieces, generation.changed,
                                            states=generation.states)
            self.progress.value = generation.progress
            self.status.value = footer_html(generation.line)

    def _ended(self, change: dict[str, Any]) -> None:
        generation = self.generation
        state = change["new"]
        self.decode_order.disabled = state != "done"
        if state == "running":
            self.canvas.value = text_html(generation.context, "")
            self.progress.value = 0.0
            self.status.value = footer_html(generation.line)
        elif state == "done":
            self.progress.value = 1.0
            self._show_result()
        elif state == "stopped":
            self._draw()
            self.status.value = footer_html(generation.line, error=True)
        elif state == "failed":
            self.canvas.value = ""
            self.status.value = footer_html(generation.line, error=True)

    def _show_result(self) -> None:
        result = self.result
        if result is None:
            return
        if self.decode_order.value:
            order = result.decode_order()
            self.canvas.value = decode_order_html(result.context, order.tokens, order.per_step,
                                                   block_starts=order.block_starts)
        else:
            self.canvas.value = text_html(result.context, result.text)
        self.status.value = footer_html(result.summary)
