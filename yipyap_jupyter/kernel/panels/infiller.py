"""`TextInfillerPanel`: fill the gap between a prefix and a suffix, at a fixed or variable length."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..render import Context
from .sampling import SamplingPanel

if TYPE_CHECKING:
    from ..client import DiffusionClient
    from ..live import EventSource

FIXED, VARIABLE = "fixed length", "variable length"


class TextInfillerPanel(SamplingPanel):
    """Prefix, suffix, length mode, Infill / Stop, and the live canvas with prefix and suffix set apart."""

    title = "Infill"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        self.infill_button = widgets.Button(description="Infill", button_style="primary", icon="play")
        super().__init__(client, self.infill_button, "yipyap-infill")
        area = widgets.Layout(width="100%", height="70px")
        self.prefix = widgets.Textarea(placeholder="Prefix (before the gap)", layout=area)
        self.suffix = widgets.Textarea(placeholder="Suffix (after the gap)", layout=area)
        self.mode = widgets.ToggleButtons(options=[FIXED, VARIABLE], value=FIXED)
        self.max_new_tokens.description = "length (variable: at most)"
        self.widget = self.layout([self.prefix, self.suffix, self.mode])

    def options(self) -> dict[str, Any]:
        """The knobs' fields plus fixed `length`, or `variable` up to max new tokens."""
        options = super().options()
        if self.mode.value == VARIABLE:
            options["variable"] = True
        else:
            options["length"] = self.max_new_tokens.value
        return options

    def _source(self, options: dict[str, Any]) -> tuple[EventSource, Context]:
        prefix, suffix, client = self.prefix.value, self.suffix.value, self.client
        source = lambda cancel: client.stream_infill(prefix, suffix, cancel=cancel, **options)  # noqa: E731
        return source, Context(before=prefix, after=suffix)
