"""`TextInfillerPanel`: fill the gap between a prefix and a suffix, at a fixed or variable length."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...errors import ValidationError
from ..render import Context
from .base import Panel
from .generation_view import GenerationView
from .generator import parse_seed, sampling_controls

if TYPE_CHECKING:
    from ...settings import UserSettings
    from ..client import DiffusionClient
    from ..result import DiffusionResult

FIXED, VARIABLE = "fixed length", "variable length"


class TextInfillerPanel(Panel):
    """Prefix, suffix, length mode, Infill / Stop, and the live canvas with prefix and suffix set apart."""

    title = "Infill"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        super().__init__(client)
        area = widgets.Layout(width="100%", height="70px")
        self.prefix = widgets.Textarea(placeholder="Prefix (before the gap)", layout=area)
        self.suffix = widgets.Textarea(placeholder="Suffix (after the gap)", layout=area)
        self.mode = widgets.ToggleButtons(options=[FIXED, VARIABLE], value=FIXED)
        self.max_new_tokens, self.steps, self.temperature, self.seed = sampling_controls(self.client.settings())
        self.max_new_tokens.description = "length (variable: at most)"
        self.infill_button = widgets.Button(description="Infill", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.view = GenerationView("yipyap-infill")
        self.infill_button.on_click(lambda _: self.infill())
        self.stop_button.on_click(lambda _: self.view.stop())
        self.view.on_running(self._running)
        self.widget = widgets.VBox([
            self.prefix,
            self.suffix,
            self.mode,
            widgets.HBox([self.max_new_tokens, self.steps]),
            widgets.HBox([self.temperature, self.seed]),
            widgets.HBox([self.infill_button, self.stop_button]),
            self.view.widget,
        ])

    @property
    def result(self) -> DiffusionResult | None:
        """The last finished infilling."""
        return self.view.result

    def apply_settings(self, settings: UserSettings) -> None:
        self.max_new_tokens.value = settings.max_new_tokens

    def options(self) -> dict[str, Any]:
        """The request fields the controls say: fixed `length`, or `variable` up to max new tokens."""
        options: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens.value,
            "steps": self.steps.value or None,
            "temperature": self.temperature.value,
            "seed": parse_seed(self.seed.value),
        }
        if self.mode.value == VARIABLE:
            options["variable"] = True
        else:
            options["length"] = self.max_new_tokens.value
        return options

    def infill(self) -> bool:
        """Start infilling in the background (what the Infill button does)."""
        try:
            options = self.options()
        except ValidationError as error:
            self.view.show_error(error)
            return False
        prefix, suffix, client = self.prefix.value, self.suffix.value, self.client
        return self.view.start(lambda cancel: client.stream_infill(prefix, suffix, cancel=cancel, **options),
                               Context(before=prefix, after=suffix))

    def wait(self, timeout: float | None = None) -> bool:
        return self.view.wait(timeout)

    def _running(self, running: bool) -> None:
        self.infill_button.disabled = running
        self.stop_button.disabled = not running
