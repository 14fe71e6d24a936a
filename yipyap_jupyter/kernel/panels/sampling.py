"""What the generator and infiller panels share: sampling knobs, Run / Stop, and the live view.

A subclass supplies its text inputs, its run button and how one request
starts (`_source`); the seed box, the settings default, the Stop wiring and
the error display live here once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...errors import ValidationError
from .base import Panel
from .generation_view import GenerationView

if TYPE_CHECKING:
    from ...settings import UserSettings
    from ..client import DiffusionClient
    from ..live import EventSource
    from ..render import Context
    from ..result import DiffusionResult

LABELS = {"description_width": "initial"}


def parse_seed(text: str) -> int | None:
    """The seed box: blank means a random seed, else a whole number >= 0."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValidationError("seed must be a whole number >= 0, or blank for a random seed")
    return int(text)


class SamplingPanel(Panel):
    """max new tokens (default from the settings), steps (0 = the model's default), temperature, seed,
    a run button, Stop (cancels within one step) and the live canvas."""

    def __init__(self, client: DiffusionClient | None, run_button: widgets.Button, view_name: str) -> None:
        super().__init__(client)
        settings = self.client.settings()
        self.max_new_tokens = widgets.BoundedIntText(value=settings.max_new_tokens, min=1, max=1024,
                                                     description="max new tokens", style=LABELS)
        self.steps = widgets.BoundedIntText(value=0, min=0, max=1024, description="steps (0 = model default)",
                                            style=LABELS)
        self.temperature = widgets.BoundedFloatText(value=0.0, min=0.0, max=10.0, step=0.1,
                                                    description="temperature", style=LABELS)
        self.seed = widgets.Text(value="", placeholder="random", description="seed",
                                 layout=widgets.Layout(width="160px"))
        self.run_button = run_button
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.view = GenerationView(view_name)
        run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.view.stop())
        self.view.on_running(self._running)

    def layout(self, inputs: list[widgets.Widget]) -> widgets.VBox:
        """The panel's inputs above the shared knobs, buttons and live view."""
        return widgets.VBox([
            *inputs,
            widgets.HBox([self.max_new_tokens, self.steps]),
            widgets.HBox([self.temperature, self.seed]),
            widgets.HBox([self.run_button, self.stop_button]),
            self.view.widget,
        ])

    @property
    def result(self) -> DiffusionResult | None:
        """The last finished run."""
        return self.view.result

    def apply_settings(self, settings: UserSettings) -> None:
        """Take a newly saved default for max new tokens."""
        self.max_new_tokens.value = settings.max_new_tokens

    def options(self) -> dict[str, Any]:
        """The request fields the knobs say (raises `ValidationError` for a bad seed)."""
        return {
            "max_new_tokens": self.max_new_tokens.value,
            "steps": self.steps.value or None,
            "temperature": self.temperature.value,
            "seed": parse_seed(self.seed.value),
        }

    def run(self) -> bool:
        """Start in the background (what the run button does); False if the options are invalid."""
        try:
            options = self.options()
        except ValidationError as error:
            self.view.show_error(error)
            return False
        source, context = self._source(options)
        return self.view.start(source, context)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running request ends (for scripts and tests)."""
        return self.view.wait(timeout)

    def _source(self, options: dict[str, Any]) -> tuple[EventSource, Context]:
        raise NotImplementedError

    def _running(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running
