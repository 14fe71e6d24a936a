"""`TextInfillerPanel`: fill the gap between a prefix and a suffix, at a fixed or variable length."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..client import infill_request
from .sampling import SamplingPanel

if TYPE_CHECKING:
    from ...service.schemas import InfillRequest
    from ..client import DiffusionClient

FIXED, VARIABLE = "fixed length", "variable length"
#: What the max-new-tokens field means in each mode; its label follows the mode.
LENGTH_LABELS = {FIXED: "length (tokens)", VARIABLE: "at most (tokens)"}


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
        self.mode.observe(lambda change: self._label(change["new"]), names="value")
        self._label(self.mode.value)
        self.widget = self.layout([self.prefix, self.suffix, self.mode])

    def _label(self, mode: str) -> None:
        self.knobs["max_new_tokens"].description = LENGTH_LABELS[mode]

    def request(self) -> InfillRequest:
        """Fixed length: the field is the gap's length; variable: the most it may grow to."""
        variable = self.mode.value == VARIABLE
        return infill_request(self.prefix.value, self.suffix.value, variable=variable or None, **self.options())
