"""yipyap-jupyter: diffusion language models (LLaDA, Dream, DreamOn) in Jupyter."""

__version__ = "0.1.0"
