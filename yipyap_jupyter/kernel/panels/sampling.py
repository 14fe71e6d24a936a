"""What the generator and infiller panels share: sampling knobs, Run / Stop, and the live view.

A subclass supplies its text inputs, its run button and the request it builds
(`request`); the knobs, the Stop wiring and the live view live here once. There is
one knob per sampler option of every family, made from the families' option
declarations (a text field for a number, a dropdown for a choice). A blank knob is
not sent, so the model's defaults and the user's settings apply
exactly as they do for `%%diffuse` and the CLI; values are checked by the
request type, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ...errors import DiffusionError, ValidationError
from ...service.schemas import SAMPLER_OPTIONS, Option
from ..client import context_of
from .base import Panel
from .generation_view import GenerationView

if TYPE_CHECKING:
    from ...service.schemas import GenerateRequest, InfillRequest
    from ...settings import UserSettings
    from ..client import DiffusionClient
    from ..result import DiffusionResult

LABELS = {"description_width": "initial"}
#: The dropdown entry that sends nothing (the model's default applies).
DEFAULT = "model default"


def parse_number(text: str, kind: type[int | float], name: str) -> int | float | None:
    """A knob's text: blank means "not set", else a number of `kind` (its range is the request's to check)."""
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise ValidationError(f"{name} must be {noun}, or blank for the default") from None


#: Knobs per row of the panel.
ROW = 3


def _knob(option: Option) -> widgets.Text | widgets.Dropdown:
    """A dropdown for an option with choices, else a text field (blank: the default)."""
    description = option.name.replace("_", " ")
    layout = widgets.Layout(width="230px")
    if option.choices or option.type is bool:
        choices = [("on", True), ("off", False)] if option.type is bool else [(c, c) for c in option.choices]
        return widgets.Dropdown(options=[(DEFAULT, DEFAULT), *choices], value=DEFAULT, description=description,
                                tooltip=option.help, style=LABELS, layout=layout)
    placeholder = "model default" if option.default.startswith("the ") else f"default {option.default}"
    return widgets.Text(value="", placeholder=placeholder, description=description, tooltip=option.help, style=LABELS,
                        layout=layout)


class SamplingPanel(Panel):
    """One knob per sampler option (max new tokens blank: the settings' default; each also an
    attribute of its name, `panel.steps`); a run button, Stop (cancels within one step) and the
    live canvas."""

    def __init__(self, client: DiffusionClient | None, run_button: widgets.Button, view_name: str) -> None:
        super().__init__(client)
        self.knobs = {option.name: _knob(option) for option in SAMPLER_OPTIONS}
        self._kinds = {option.name: option.type for option in SAMPLER_OPTIONS}
        for name, knob in self.knobs.items():
            setattr(self, name, knob)
        self.apply_settings(self.client.settings())
        self.run_button = run_button
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.view = GenerationView(view_name)
        run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.view.stop())
        self.view.on_running(self._running)

    def layout(self, inputs: list[widgets.Widget]) -> widgets.VBox:
        """The panel's inputs above the shared knobs, buttons and live view."""
        knobs = list(self.knobs.values())
        return widgets.VBox([
            *inputs,
            *(widgets.HBox(knobs[i:i + ROW]) for i in range(0, len(knobs), ROW)),
            widgets.HBox([self.run_button, self.stop_button]),
            self.view.widget,
        ])

    @property
    def result(self) -> DiffusionResult | None:
        """The last finished run."""
        return self.view.result

    def apply_settings(self, settings: UserSettings) -> None:
        """Show the saved default for max new tokens, which a blank field gets."""
        saved = settings.max_new_tokens
        self.knobs["max_new_tokens"].placeholder = "model default" if saved is None else f"default {saved}"

    def options(self) -> dict[str, Any]:
        """The request fields the knobs set (blank ones left out); raises `ValidationError` for a non-number."""
        options: dict[str, Any] = {}
        for name, knob in self.knobs.items():
            if isinstance(knob, widgets.Dropdown):
                options[name] = None if knob.value == DEFAULT else knob.value
            else:
                options[name] = parse_number(knob.value, self._kinds[name], knob.description)
        return {name: value for name, value in options.items() if value is not None}

    def request(self) -> GenerateRequest | InfillRequest:
        """The one request type, from the inputs and knobs (raises `ValidationError`)."""
        raise NotImplementedError

    def run(self) -> bool:
        """Start in the background (what the run button does); False if the request is refused."""
        try:
            request = self.request()
        except DiffusionError as error:
            self.view.refuse(error)
            return False
        client = self.client
        return self.view.start(lambda cancel: client.events(request, cancel), context_of(request))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running request ends (for scripts and tests)."""
        return self.view.wait(timeout)

    def _running(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running
