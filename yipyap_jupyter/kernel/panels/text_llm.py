"""`TextLLMPanel`: the five panels as tabs over one client, sharing the saved settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from .base import Panel
from .generator import TextGeneratorPanel
from .infiller import TextInfillerPanel
from .management import ModelManagementPanel
from .selector import ModelSelectorPanel
from .settings import SettingsPanel

if TYPE_CHECKING:
    from ...settings import UserSettings
    from ..client import DiffusionClient


class TextLLMPanel(Panel):
    """Generate, Infill, Models, Settings and Downloads in one tabbed widget."""

    title = "yipyap diffusion"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        super().__init__(client)
        self.generator = TextGeneratorPanel(self.client)
        self.infiller = TextInfillerPanel(self.client)
        self.selector = ModelSelectorPanel(self.client)
        self.settings = SettingsPanel(self.client)
        self.management = ModelManagementPanel(self.client)
        self.panels: list[Panel] = [self.generator, self.infiller, self.selector, self.settings, self.management]
        self.settings.on_saved(self._apply_settings)
        self.generator.view.on_running(self._ran)
        self.infiller.view.on_running(self._ran)
        self.widget = widgets.Tab(children=[panel.widget for panel in self.panels],
                                  titles=[panel.title for panel in self.panels])

    def _ran(self, running: bool) -> None:
        """After a generation the Models tab shows the model it loaded (or fell back to CPU with)."""
        if not running:
            self.selector.refresh()

    def _apply_settings(self, settings: UserSettings) -> None:
        self.generator.apply_settings(settings)
        self.infiller.apply_settings(settings)
        self.selector.apply_settings(settings)
