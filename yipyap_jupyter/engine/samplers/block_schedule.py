"""The block schedule of the masked whole-canvas samplers (LLaDA, Dream): its defaults and its rules.

The generated span is cut into blocks of `block_length` that must divide it, and the
steps are shared evenly by the blocks. Torch-free: the service's plan checks it before
anything runs.
"""

from __future__ import annotations

from ...errors import ValidationError
from ..options import Job, SamplingOptions, default


def resolve_blocks(options: SamplingOptions, job: Job, defaults: SamplingOptions, *, block_length: int,
                   whole_span: bool) -> SamplingOptions:
    """`steps`, `block_length`, `cache` and `threshold` filled in and checked against `max_new_tokens`.

    Without a block length a fixed-length infill is one block (the whole gap), as is a run of a
    sampler with a whole-span form when `whole_span`; otherwise `block_length` when it divides
    the length, else one block.

    Raises:
        ValidationError: a block length that does not divide the length, or steps that do not fit the blocks.
    """
    n = options.max_new_tokens
    cache = options.cache or defaults.cache or "none"
    threshold = default(options.threshold, defaults.threshold)
    block = options.block_length
    if block is None and (job == "infill" or (whole_span and cache == "none" and threshold is None)):
        block = n
    if block is None:
        block = block_length if n % block_length == 0 else n
    if n % block:
        raise ValidationError(f"block_length {block} must divide max_new_tokens {n}")
    blocks = n // block
    steps = options.steps
    if steps is None:
        steps = max(blocks, min(defaults.steps, n) // blocks * blocks)
    elif not blocks <= steps <= n or steps % blocks:
        raise ValidationError(
            f"steps must be a multiple of the {blocks} block(s) between {blocks} and max_new_tokens ({n}), got {steps}"
        )
    return options.replace(steps=steps, block_length=block, cache=cache, threshold=threshold)
