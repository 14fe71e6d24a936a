"""yipyap-jupyter: diffusion language models (LLaDA, Dream, DreamOn) in Jupyter."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

__version__ = "0.1.0"

# A library leaves logging to its host: without this, logging's last-resort handler would print the
# service's warnings into notebook cells (failures reach users as categorised errors anyway).
logging.getLogger(__name__).addHandler(logging.NullHandler())


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """`%load_ext yipyap_jupyter`: register the `%diffuse` / `%%diffuse` magics (imported only now)."""
    from .kernel.magics import load_ipython_extension as register

    register(ipython)


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """The jupyter-server extension (`yipyap_jupyter.server.app`, imported only when the server loads it)."""
    from .server.app import DiffusionLLMApp

    return [{"module": "yipyap_jupyter.server.app", "app": DiffusionLLMApp}]
