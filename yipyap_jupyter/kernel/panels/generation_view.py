"""The live part of the generator and infiller panels: canvas, progress bar, timing, status.

It consumes the service's events in a background thread (see `jobs`), redraws
at most about ten times a second, and ends with the final text and its summary
line, "stopped at step k", or the failure's category and whether a retry may help.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets

from ...cancel import CancelToken
from ...constants import MASK_GLYPH
from ...errors import DiffusionError, GenerationCancelled, GenerationError
from ..live import Throttle
from ..render import (
    Context,
    canvas_html,
    error_line,
    footer_html,
    progress_line,
    text_html,
)
from ..result import DiffusionResult, ResultBuilder
from .jobs import BackgroundJob

EventSource = Callable[[CancelToken], Iterator[Any]]


class GenerationView:
    """Shows one generation at a time; `start` returns at once, `stop` cancels, `wait` blocks."""

    def __init__(self, name: str) -> None:
        self.canvas = widgets.HTML(value="")
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="50%"))
        self.timing = widgets.Label(value="")
        self.status = widgets.HTML(value="")
        self.widget = widgets.VBox([self.canvas, widgets.HBox([self.progress, self.timing]), self.status])
        self.job = BackgroundJob(name)
        self.result: DiffusionResult | None = None
        self.error: DiffusionError | None = None
        self._on_running: list[Callable[[bool], None]] = []

    @property
    def running(self) -> bool:
        return self.job.running

    def on_running(self, callback: Callable[[bool], None]) -> None:
        """Call `callback(running)` when a generation starts and when it ends."""
        self._on_running.append(callback)

    def start(self, source: EventSource, context: Context) -> bool:
        """Start consuming `source(cancel)`; False if a generation is still running."""
        if self.job.running:
            return False
        self._notify(True)
        return self.job.start(lambda cancel: self._run(source, context, cancel))

    def stop(self) -> None:
        self.job.stop()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the generation ends (for scripts and tests); True if it has."""
        return self.job.wait(timeout)

    def show_error(self, error: DiffusionError) -> None:
        self.error = error
        self.status.value = footer_html(error_line(error.error_type, error.message, error.retryable), error=True)

    def _notify(self, running: bool) -> None:
        for callback in self._on_running:
            callback(running)

    def _run(self, source: EventSource, context: Context, cancel: CancelToken) -> None:
        self.result, self.error = None, None
        builder = ResultBuilder(context)
        throttle = Throttle()
        began = time.monotonic()
        self.canvas.value = text_html(context, "")
        self.progress.value = 0.0
        self.timing.value = ""
        self.status.value = footer_html("starting…")
        try:
            for event in source(cancel):
                builder.feed(event)
                if event.type == "status":
                    self.status.value = footer_html(event.message)
                elif event.type == "step" and throttle.ready():
                    self._draw(builder, began)
            result = builder.result()
        except GenerationCancelled as stopped:
            self._draw(builder, began)
            self.status.value = footer_html(f"stopped at step {stopped.step}", error=True)
        except DiffusionError as error:
            self.show_error(error)
        except Exception as error:  # a bug must not leave the panel spinning: show it as a generation error
            self.show_error(GenerationError(f"{type(error).__name__}: {error}"))
        else:
            self.result = result
            self.canvas.value = text_html(context, result.text)
            self.progress.value = 1.0
            self.timing.value = result.summary
            self.status.value = ""
        finally:
            self._notify(False)

    def _draw(self, builder: ResultBuilder, began: float) -> None:
        frame = builder.last_frame
        if frame is None:
            return
        committed = sum(1 for piece in frame.pieces if piece != MASK_GLYPH)
        self.canvas.value = canvas_html(builder.context, frame.pieces, frame.changed)
        self.progress.value = frame.progress
        self.timing.value = progress_line(frame.step, frame.total_steps, committed, time.monotonic() - began)
