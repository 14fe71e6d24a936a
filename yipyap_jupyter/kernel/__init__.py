"""The notebook side: `%%diffuse` magics, widget panels and the `DiffusionClient` they share.

Nothing here imports torch; the local backend imports it when it first loads a model.
"""

from .client import DiffusionClient
from .live.state import GenerationStopped
from .result import DiffusionResult

__all__ = ["DiffusionClient", "DiffusionResult", "GenerationStopped"]
