"""What the block families' samplers (LLaDA 2.x, SDAR) share in resolving a request: defaults and rules.

Torch-free: the service's plan checks a request before anything runs.
"""

from __future__ import annotations

from ...errors import ValidationError
from ..options import SamplingOptions, default

#: The caches of the block families: "prefix" keeps committed blocks' keys/values (exact), "none" recomputes them.
BLOCK_CACHES = ("prefix", "none")


def resolve_block_options(options: SamplingOptions, defaults: SamplingOptions, family: str) -> SamplingOptions:
    """Block length, steps, threshold, cache, temperature, top_k and top_p filled in from `defaults` and checked.

    Raises:
        ValidationError: a cache these families do not have (Fast-dLLM's "dual" is for whole-canvas models).
    """
    cache = options.cache or defaults.cache or "prefix"
    if cache not in BLOCK_CACHES:
        raise ValidationError(f"cache {cache!r} does not apply to {family} models: use prefix (the exact block cache)"
                              " or none (recompute every step)")
    return options.replace(
        block_length=options.block_length or defaults.block_length, steps=options.steps or defaults.steps,
        threshold=default(options.threshold, defaults.threshold), cache=cache,
        temperature=default(options.temperature, defaults.temperature), top_k=default(options.top_k, defaults.top_k),
        top_p=default(options.top_p, defaults.top_p),
    )


def padding(length: int, block_length: int) -> int:
    """Masks the block samplers add after `length` positions to end on a whole block."""
    return -length % block_length
