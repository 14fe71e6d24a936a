"""SDAR's (and TraDo's) sampler program: the block sampler with SDAR's remasking strategies.

As `block_diffusion_generate`: `steps` denoising steps per block on the
`block_length // steps` schedule; `low_confidence_dynamic` is the threshold rule,
`low_confidence_static` the static one, `sequential` left to right; generation stops
after a block when a stop token stands anywhere in what was generated. The official
loop's separate passes that store a finished block's keys/values (and the prompt's) ride
along with the next block's first pass here: the same keys/values, one pass fewer per block.
"""

from __future__ import annotations

import torch

from ....errors import ValidationError
from ...samplers.base import Program
from ...samplers.block import SDAR_REMASKING, block_program


def sdar_program(
    canvas: torch.Tensor,
    *,
    mask_id: int,
    stop_ids: frozenset[int],
    block_length: int = 4,
    steps: int = 4,
    remasking: str = "low_confidence_dynamic",
    threshold: float = 0.85,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    cache: str = "prefix",
) -> Program:
    """The masks ending `canvas` (1, L) generated as SDAR's `block_diffusion_generate` generates them."""
    if remasking not in SDAR_REMASKING:
        raise ValidationError(f"remasking must be one of {', '.join(SDAR_REMASKING)}, got {remasking!r}")
    return block_program(
        canvas, mask_id=mask_id, block_length=block_length, steps=steps, rule=SDAR_REMASKING[remasking],
        threshold=threshold, stop_ids=stop_ids, stop_after_block=True, temperature=temperature, top_k=top_k,
        top_p=top_p, generator=generator, cache=cache,
    )
