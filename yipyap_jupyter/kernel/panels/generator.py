"""`TextGeneratorPanel`: a prompt, a few knobs, Generate / Stop, and the live canvas."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..render import Context
from .sampling import SamplingPanel

if TYPE_CHECKING:
    from ..client import DiffusionClient
    from ..live import EventSource


class TextGeneratorPanel(SamplingPanel):
    """Continue a prompt and watch the masks resolve; Stop cancels within one step."""

    title = "Generate"

    def __init__(self, client: DiffusionClient | None = None) -> None:
        self.generate_button = widgets.Button(description="Generate", button_style="primary", icon="play")
        super().__init__(client, self.generate_button, "yipyap-generate")
        self.prompt = widgets.Textarea(placeholder="Prompt", layout=widgets.Layout(width="100%", height="90px"))
        self.widget = self.layout([self.prompt])

    def _source(self, options: dict[str, Any]) -> tuple[EventSource, Context]:
        prompt, client = self.prompt.value, self.client
        return (lambda cancel: client.stream_generate(prompt, cancel=cancel, **options)), Context(before=prompt)
