"""`TextGeneratorPanel`: a prompt, the sampling knobs, Generate / Stop, and the live canvas."""

from __future__ import annotations

from typing import TYPE_CHECKING

import ipywidgets as widgets

from ..client import generate_request
from .sampling import SamplingPanel

if TYPE_CHECKING:
    from ...service.schemas import GenerateRequest
    from ..client import DiffusionClient


class TextGeneratorPanel(SamplingPanel):
    """Continue a prompt and watch the masks resolve; Stop cancels within one step."""

    title = "Generate"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        super().__init__(client, self.generate_button, "yipyap-generate")
        self.prompt = widgets.Textarea(placeholder="Prompt", layout=widgets.Layout(width="100%", height="90px"))
        self.widget = self.layout([self.prompt])

    def request(self) -> GenerateRequest:
        return generate_request(self.prompt.value, **self.options())
