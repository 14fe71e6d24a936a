"""SDAR's (and TraDo's) sampler program: the block sampler with SDAR's remasking strategies.

As `block_diffusion_generate`: `steps` denoising steps per block on the
`block_length // steps` schedule; `low_confidence_dynamic` is the threshold rule,
`low_confidence_static` the static one, `sequential` left to right; generation stops
after a block when a stop token stands anywhere in what was generated. The official
loop's separate passes that store a finished block's keys/values (and the prompt's) ride
along with the next block's first pass here: the same keys/values, one pass fewer per block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ....errors import ValidationError
from ...samplers.base import Program
from ...samplers.block import block_program, request_arguments, request_canvas

if TYPE_CHECKING:
    from ...model import DiffusionModel
    from ...options import SamplingOptions

#: SDAR's `remasking_strategy` names and the block sampler's rules they are.
RULE_OF = {"low_confidence_dynamic": "threshold", "low_confidence_static": "static", "sequential": "sequential"}


def sdar_program(
    canvas: torch.Tensor,
    *,
    mask_id: int,
    stop_ids: frozenset[int],
    block_length: int = 4,
    steps: int = 4,
    remasking: str = "low_confidence_dynamic",
    threshold: float = 0.85,
    **draw: Any,
) -> Program:
    """The masks ending `canvas` (1, L) generated as SDAR's `block_diffusion_generate` generates them.

    `draw`: `block_program`'s temperature, top_k, top_p, generator and cache (greedy, the block cache by default).
    """
    if remasking not in RULE_OF:
        raise ValidationError(f"remasking must be one of {', '.join(RULE_OF)}, got {remasking!r}")
    return block_program(
        canvas, mask_id=mask_id, block_length=block_length, steps=steps, rule=RULE_OF[remasking],
        threshold=threshold, stop_ids=stop_ids, stop_after_block=True, **draw,
    )


def model_program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    """The program of a resolved request on a loaded model: `before` (the prompt) continued block by block."""
    return sdar_program(
        request_canvas(model, before, options), stop_ids=model.ids.stops, steps=options.steps,
        remasking=options.remasking, threshold=options.threshold, **request_arguments(model, options),
    )
