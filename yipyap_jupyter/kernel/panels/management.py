"""`ModelManagementPanel`: what is in the Hugging Face cache, and Download buttons with progress bars.

Downloading is the one action that reaches the hub, and only when clicked.
Each download runs in its own background thread and reports bytes through a
progress bar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from ...errors import DiffusionError, as_error
from ..answers import human_size
from ..render import error_line, footer_html
from .base import Panel
from .jobs import BackgroundJob

if TYPE_CHECKING:
    from ...service.schemas import ModelInfo
    from ..client import DiffusionClient

#: Label, progress bar, button: the columns of the downloads grid.
GRID_COLUMNS = "max-content 200px 120px"


class DownloadRow:
    """One model: id, cache state and size, its progress bar and a Download button (three grid cells)."""

    def __init__(self, panel: ModelManagementPanel, info: ModelInfo) -> None:
        self.panel = panel
        self.model_id = info.id
        self.label = widgets.HTML(value="")
        self.button = widgets.Button(description="Download", icon="download", layout=widgets.Layout(width="120px"))
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout=widgets.Layout(width="auto"))
        self.job = BackgroundJob(f"yipyap-download-{info.id}")
        self.button.on_click(lambda _: self.download())
        self.cells = [self.label, self.progress, self.button]
        self.show(info)

    def show(self, info: ModelInfo) -> None:
        where = "in the package" if info.repo_id is None else info.repo_id
        state = f"cached, {human_size(info.size_on_disk)}" if info.cached else "not downloaded"
        self.label.value = f"<code>{info.id}</code> · {where} · {state}"
        self.progress.value = 1.0 if info.cached else 0.0
        self.button.disabled = info.cached or info.repo_id is None or self.job.running

    def download(self) -> bool:
        """Start fetching this model's weights in the background."""
        if self.job.running:
            return False
        self.button.disabled = True
        self.panel.status.value = footer_html(f"downloading {self.model_id}…")
        return self.job.start(lambda _cancel: self._run())

    def _run(self) -> None:
        try:
            info = self.panel.client.download(self.model_id, self._progress)
        except Exception as error:  # noqa: BLE001 - shown with its category, not lost in a thread
            self._fail(as_error(error))
        else:
            self.show(info)
            self.panel.status.value = footer_html(f"{self.model_id} downloaded")

    def _progress(self, done: int, total: int) -> None:
        if total > 0:
            self.progress.value = min(1.0, done / total)

    def _fail(self, error: DiffusionError) -> None:
        self.button.disabled = False
        self.panel.status.value = footer_html(error_line(error.error_type, error.message, error.retryable), error=True)


class ModelManagementPanel(Panel):
    """Cache and download status of every known model."""

    title = "Downloads"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        super().__init__(client)
        self.rows: dict[str, DownloadRow] = {}
        # One grid, so every row's bar starts at the same x whatever its label's length.
        self.table = widgets.GridBox([], layout=widgets.Layout(grid_template_columns=GRID_COLUMNS,
                                                               align_items="center", grid_gap="2px 12px"))
        self.status = widgets.HTML(value="")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = widgets.VBox([self.table, widgets.HBox([self.refresh_button]), self.status])
        self.refresh()

    def refresh(self) -> None:
        """Re-read cache state; rows with a download in flight keep their progress."""
        try:
            models = self.client.models()
        except DiffusionError as error:
            self.status.value = footer_html(error_line(error.error_type, error.message, error.retryable), error=True)
            return
        for info in models:
            row = self.rows.get(info.id)
            if row is None:
                self.rows[info.id] = DownloadRow(self, info)
            elif not row.job.running:
                row.show(info)
        self.table.children = [cell for info in models for cell in self.rows[info.id].cells]
