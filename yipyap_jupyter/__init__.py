"""yipyap-jupyter: diffusion language models (LLaDA, Dream, DreamOn) in Jupyter."""

__version__ = "0.1.0"


def load_ipython_extension(ipython: object) -> None:
    """`%load_ext yipyap_jupyter`: register the `%diffuse` / `%%diffuse` magics (imported only now)."""
    from .kernel.magics import load_ipython_extension as register

    register(ipython)


def _jupyter_server_extension_points() -> list[dict[str, object]]:
    """The jupyter-server extension (`yipyap_jupyter.server.app`, imported only when the server loads it)."""
    from .server.app import DiffusionLLMApp

    return [{"module": "yipyap_jupyter.server.app", "app": DiffusionLLMApp}]
