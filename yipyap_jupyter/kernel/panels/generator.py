"""`TextGeneratorPanel`: a prompt, a few knobs, Generate / Stop, and the live canvas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...errors import ValidationError
from ..render import Context
from .base import Panel
from .generation_view import GenerationView

if TYPE_CHECKING:
    from ...settings import UserSettings
    from ..client import DiffusionClient
    from ..result import DiffusionResult

WIDE = widgets.Layout(width="100%")


def parse_seed(text: str) -> int | None:
    """The seed box: blank means a random seed, else a whole number >= 0."""
    text = text.strip()
    if not text:
        return None
    if not text.isdigit():
        raise ValidationError("seed must be a whole number >= 0, or blank for a random seed")
    return int(text)


def sampling_controls(settings: UserSettings) -> tuple[widgets.BoundedIntText, widgets.BoundedIntText,
                                                       widgets.BoundedFloatText, widgets.Text]:
    """max new tokens (default from the settings), steps (0 = the model's default), temperature, seed."""
    return (
        widgets.BoundedIntText(value=settings.max_new_tokens, min=1, max=1024, description="max new tokens",
                               style={"description_width": "initial"}),
        widgets.BoundedIntText(value=0, min=0, max=1024, description="steps (0 = model default)",
                               style={"description_width": "initial"}),
        widgets.BoundedFloatText(value=0.0, min=0.0, max=10.0, step=0.1, description="temperature",
                                 style={"description_width": "initial"}),
        widgets.Text(value="", placeholder="random", description="seed", layout=widgets.Layout(width="160px")),
    )


class TextGeneratorPanel(Panel):
    """Continue a prompt and watch the masks resolve; Stop cancels within one step."""

    title = "Generate"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        super().__init__(client)
        self.prompt = widgets.Textarea(placeholder="Prompt", layout=widgets.Layout(width="100%", height="90px"))
        self.max_new_tokens, self.steps, self.temperature, self.seed = sampling_controls(self.client.settings())
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.view = GenerationView("yipyap-generate")
        self.generate_button.on_click(lambda _: self.generate())
        self.stop_button.on_click(lambda _: self.view.stop())
        self.view.on_running(self._running)
        self.widget = widgets.VBox([
            self.prompt,
            widgets.HBox([self.max_new_tokens, self.steps]),
            widgets.HBox([self.temperature, self.seed]),
            widgets.HBox([self.generate_button, self.stop_button]),
            self.view.widget,
        ])

    @property
    def result(self) -> DiffusionResult | None:
        """The last finished generation."""
        return self.view.result

    def apply_settings(self, settings: UserSettings) -> None:
        """Take a newly saved default for max new tokens."""
        self.max_new_tokens.value = settings.max_new_tokens

    def options(self) -> dict[str, Any]:
        """The request fields the controls say (raises `ValidationError` for a bad seed)."""
        return {
            "max_new_tokens": self.max_new_tokens.value,
            "steps": self.steps.value or None,
            "temperature": self.temperature.value,
            "seed": parse_seed(self.seed.value),
        }

    def generate(self) -> bool:
        """Start generating in the background (what the Generate button does)."""
        try:
            options = self.options()
        except ValidationError as error:
            self.view.show_error(error)
            return False
        prompt, client = self.prompt.value, self.client
        return self.view.start(lambda cancel: client.stream_generate(prompt, cancel=cancel, **options),
                               Context(before=prompt))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running generation ends (for scripts and tests)."""
        return self.view.wait(timeout)

    def _running(self, running: bool) -> None:
        self.generate_button.disabled = running
        self.stop_button.disabled = not running
