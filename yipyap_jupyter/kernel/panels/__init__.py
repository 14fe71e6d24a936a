"""ipywidgets panels over a `DiffusionClient`: one module per panel, composed in `TextLLMPanel`."""

from .generator import TextGeneratorPanel
from .infiller import TextInfillerPanel
from .management import ModelManagementPanel
from .replay import ReplayPanel
from .selector import ModelSelectorPanel
from .settings import SettingsPanel
from .text_llm import TextLLMPanel

__all__ = [
    "ModelManagementPanel",
    "ModelSelectorPanel",
    "ReplayPanel",
    "SettingsPanel",
    "TextGeneratorPanel",
    "TextInfillerPanel",
    "TextLLMPanel",
]
