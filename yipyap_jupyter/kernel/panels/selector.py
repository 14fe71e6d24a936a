"""`ModelSelectorPanel`: pick a model, a device preference, Load / Unload, and see what is loaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as widgets

from ...constants import DEFAULT_MODEL_ID, DEVICE_CHOICES
from ...errors import DiffusionError, as_error
from ..answers import describe_model
from ..render import error_line, footer_html
from .base import Panel
from .jobs import BackgroundJob

if TYPE_CHECKING:
    from ...service.schemas import ModelInfo
    from ...settings import UserSettings
    from ..client import DiffusionClient


def model_label(info: ModelInfo) -> str:
    """A dropdown entry: id and its state."""
    state = "loaded" if info.loaded else ("cached" if info.cached else "not downloaded")
    return f"{info.id} ({state})"


class ModelSelectorPanel(Panel):
    """Models with their cached / loaded state; loading runs in the background.

    `device` is where the next Load asks for (a preference such as `auto`); `loaded`
    says where the loaded model really is, and in which dtype.
    """

    title = "Models"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        super().__init__(client)
        self.model = widgets.Dropdown(description="model", options=[])
        self.device = widgets.Dropdown(description="load on", options=list(DEVICE_CHOICES),
                                       value=self.client.settings().preferred_device)
        self.loaded = widgets.HTML(value="")
        self.load_button = widgets.Button(description="Load", button_style="primary", icon="download")
        self.unload_button = widgets.Button(description="Unload", icon="eject")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.status = widgets.HTML(value="")
        self.job = BackgroundJob("yipyap-load")
        self.load_button.on_click(lambda _: self.load())
        self.unload_button.on_click(lambda _: self.unload())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = widgets.VBox([
            widgets.HBox([self.model, self.device]),
            widgets.HBox([self.load_button, self.unload_button, self.refresh_button]),
            self.loaded,
            self.status,
        ])
        self.refresh()

    def apply_settings(self, settings: UserSettings) -> None:
        self.device.value = settings.preferred_device

    def refresh(self) -> None:
        """Re-read the models and the loaded one."""
        try:
            models = self.client.models()
        except DiffusionError as error:
            self._fail(error)
            return
        chosen = self.model.value
        self.model.options = [(model_label(m), m.id) for m in models]
        loaded = next((m for m in models if m.loaded), None)
        ids = [m.id for m in models]
        fallback = loaded.id if loaded else (DEFAULT_MODEL_ID if DEFAULT_MODEL_ID in ids else None)
        self.model.value = chosen if chosen in ids else fallback
        self.loaded.value = footer_html(f"loaded: {describe_model(loaded)}" if loaded else describe_model(None))
        self.status.value = ""

    def load(self) -> bool:
        """Load the chosen model on the chosen device, in the background."""
        model_id, device = self.model.value, self.device.value
        if model_id is None:
            return False
        return self._start(f"loading {model_id} on {device}…", lambda: self.client.load(model_id, device))

    def unload(self) -> bool:
        return self._start("unloading…", self.client.unload)

    def wait(self, timeout: float | None = None) -> bool:
        return self.job.wait(timeout)

    def _start(self, message: str, work: Callable[[], object]) -> bool:
        if self.job.running:
            return False
        self._busy(True)
        self.status.value = footer_html(message)

        def run(_cancel: object) -> None:
            try:
                work()
            except Exception as error:  # noqa: BLE001 - shown with its category, not lost in a thread
                self._fail(as_error(error))
            else:
                self.refresh()
            finally:
                self._busy(False)

        return self.job.start(run)

    def _busy(self, busy: bool) -> None:
        for button in (self.load_button, self.unload_button, self.refresh_button):
            button.disabled = busy

    def _fail(self, error: DiffusionError) -> None:
        self.status.value = footer_html(error_line(error.error_type, error.message, error.retryable), error=True)
