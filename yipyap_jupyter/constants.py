"""Defaults and environment-driven switches, all in one place."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

#: The model every entry point uses unless told otherwise: shipped inside the package.
DEFAULT_MODEL_ID = "tiny"
TINY_MODEL_DIR = PACKAGE_DIR / "models" / "tiny"

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
