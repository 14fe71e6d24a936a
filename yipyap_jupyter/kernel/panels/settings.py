"""`SettingsPanel`: the user's saved defaults, written on every change.

The same JSON file the server's `/settings` serves. A rejected value is put back
and the reason shown; the file is never left half-written (the store writes
atomically).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...constants import DEVICE_CHOICES
from ...errors import DiffusionError
from ..render import error_line, footer_html
from .base import Panel

if TYPE_CHECKING:
    from ...settings import UserSettings
    from ..client import DiffusionClient

WIDE_LABEL = {"description_width": "initial"}


class SettingsPanel(Panel):
    """auto_trim, fix_punctuation, default max new tokens, request timeout, preferred device."""

    title = "Settings"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        super().__init__(client)
        current = self.client.settings()
        self.fields: dict[str, widgets.ValueWidget] = {
            "auto_trim": widgets.Checkbox(value=current.auto_trim, description="trim the end of generations",
                                          indent=False),
            "fix_punctuation": widgets.Checkbox(value=current.fix_punctuation, description="fix punctuation spacing",
                                                indent=False),
            # text, so that blank (each model's own default) is a value; saved on Enter or leaving the field
            "max_new_tokens": widgets.Text(value="" if current.max_new_tokens is None else str(current.max_new_tokens),
                                           placeholder="each model's own", description="default max new tokens",
                                           style=WIDE_LABEL, continuous_update=False),
            "request_timeout": widgets.BoundedFloatText(value=current.request_timeout, min=1, max=3600,
                                                        description="request timeout (s)", style=WIDE_LABEL),
            "preferred_device": widgets.Dropdown(options=list(DEVICE_CHOICES), value=current.preferred_device,
                                                 description="preferred device", style=WIDE_LABEL),
        }
        self.status = widgets.HTML(value="")
        self.settings = current
        self._listeners: list[Callable[[UserSettings], None]] = []
        self._restoring = False
        for key, field in self.fields.items():
            field.observe(lambda change, key=key: self._changed(key, change), names="value")
        self.widget = widgets.VBox([*self.fields.values(), self.status])

    def on_saved(self, callback: Callable[[UserSettings], None]) -> None:
        """Call `callback(settings)` after every successful save (other panels take new defaults)."""
        self._listeners.append(callback)

    def _changed(self, key: str, change: dict[str, Any]) -> None:
        if self._restoring:
            return
        value = change["new"]
        if isinstance(value, str) and not value.strip():
            value = None  # a blank text field: not set
        try:
            self.settings = self.client.update_settings(**{key: value})
        except DiffusionError as error:
            self._restoring = True
            try:
                self.fields[key].value = change["old"]
            finally:
                self._restoring = False
            self.status.value = footer_html(error_line(error.error_type, error.message, error.retryable), error=True)
            return
        self.status.value = footer_html(f"saved {key} = {getattr(self.settings, key)}")
        for listener in self._listeners:
            listener(self.settings)
