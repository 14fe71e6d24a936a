"""Defaults and environment-driven switches, all in one place."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

#: Models shipped inside the package, each in `models/<id>/`.
SHIPPED_MODELS_DIR = PACKAGE_DIR / "models"
TINY_MODEL_DIR = SHIPPED_MODELS_DIR / "tiny"
TINY_BLOCK_MODEL_DIR = SHIPPED_MODELS_DIR / "tiny-block"
#: The model every entry point generates with unless told otherwise (shipped, block diffusion).
DEFAULT_MODEL_ID = "tiny-block"
#: The model infill falls back to when the default is resident: a block-causal model cannot see a suffix.
DEFAULT_INFILL_MODEL_ID = "tiny"


def default_model_for(job: str, resident: str | None, default: str | None = DEFAULT_MODEL_ID) -> str | None:
    """The model a request that names none runs on: the resident one, else `default`.

    One exception: the shipped default generates only (block-causal attention cannot see a
    suffix), so an infill (`job` "infill") meeting it resident, or as the default with nothing
    resident, runs on `tiny` instead, which then becomes the resident model.
    """
    if job != "generate" and default == DEFAULT_MODEL_ID and resident in (None, DEFAULT_MODEL_ID):
        return DEFAULT_INFILL_MODEL_ID
    return resident or default

#: Glyph shown for a still-masked position in a canvas.
MASK_GLYPH = "▒"

#: Devices a user may ask for.
DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")

#: Fraction of free accelerator memory a model may take when `auto` decides whether it fits.
ACCELERATOR_MEMORY_HEADROOM = 0.9

#: Fixed-length requests decoded together at most (1 turns batching off).
DEFAULT_MAX_BATCH_SIZE = 8
#: Canvas positions a decoding batch holds at most (classifier-free guidance counts twice): its passes' size.
DEFAULT_MAX_BATCH_TOKENS = 8192
