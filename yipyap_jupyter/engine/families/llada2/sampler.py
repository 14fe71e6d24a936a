"""LLaDA 2.x's sampler program: the block sampler with LLaDA 2.0's threshold rule or LLaDA 2.1's token editing.

As the official `generate` of each: 2.0 caps `steps` at the tokens to generate, commits by
the threshold rule on the `block_length // steps` schedule, stops after a block that holds
an end token (and, with `eos_early_stop`, as soon as a step commits one with nothing
before it still masked). 2.1 (`editing_threshold` or `max_post_steps` given) commits masks
by the threshold rule one or more per step, edits, does not read `steps`, and stops at an
end token only with `eos_early_stop`, after the block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from ...samplers.base import Program
from ...samplers.block import Editing, block_program, request_arguments, request_canvas

if TYPE_CHECKING:
    from ...model import DiffusionModel
    from ...options import SamplingOptions

#: LLaDA 2.1's defaults for the editing option not given (its `generate`'s).
EDITING_THRESHOLD = 0.9
MAX_POST_STEPS = 16


def llada2_program(
    canvas: torch.Tensor,
    *,
    mask_id: int,
    eos_id: int,
    block_length: int = 32,
    steps: int = 32,
    threshold: float = 0.95,
    eos_early_stop: bool = False,
    editing_threshold: float | None = None,
    max_post_steps: int | None = None,
    **draw: Any,
) -> Program:
    """The masks ending `canvas` (1, L) generated as LLaDA 2.0 (or, with an editing option, 2.1) generates them.

    `draw`: `block_program`'s temperature, top_k, top_p, generator and cache (greedy, the block cache by default).
    """
    editing = None
    if editing_threshold is not None or max_post_steps is not None:
        editing = Editing(EDITING_THRESHOLD if editing_threshold is None else editing_threshold,
                          MAX_POST_STEPS if max_post_steps is None else max_post_steps)
    masks = int((canvas[0] == mask_id).sum())
    return block_program(
        canvas, mask_id=mask_id, block_length=block_length, steps=max(1, min(steps, masks)), rule="threshold",
        threshold=threshold, editing=editing, stop_ids=frozenset({eos_id}),
        stop_after_block=editing is None or eos_early_stop, stop_mid_block=editing is None and eos_early_stop, **draw,
    )


def model_program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    """The program of a resolved request on a loaded model: `before` (the prompt) continued block by block."""
    return llada2_program(
        request_canvas(model, before, options), eos_id=model.ids.eos, steps=options.steps,
        threshold=options.threshold, eos_early_stop=options.eos_early_stop,
        editing_threshold=options.editing_threshold, max_post_steps=options.max_post_steps,
        **request_arguments(model, options),
    )
