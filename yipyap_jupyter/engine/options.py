"""Sampler options and the one function that resolves them against a model.

`SamplingOptions` says how to sample; a field left None takes the model's own
default. `resolve` fills those defaults from the `ModelSpec`, checks that every
option given applies to the sampler that will run (an option that does not is an
error naming it, never silently replaced), and checks the schedule (block length
divides the length, steps fit the blocks). The service's plan calls it once with the
user's settings and the request folded in; engine callers (tests, scripts) may call
the model directly and get the same resolution.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from ..errors import ValidationError
from .specs import ModelSpec

#: What a run does; it picks the sampler.
Job = Literal["generate", "infill", "variable_infill"]
Sampler = Literal["llada", "dream", "variable_infill"]

#: Options each sampler reads beyond the shared ones (max_new_tokens, temperature, seed).
SAMPLER_OPTIONS: dict[Sampler, frozenset[str]] = {
    "llada": frozenset({"steps", "block_length", "remasking", "cfg_scale", "threshold", "cache"}),
    "dream": frozenset({"steps", "block_length", "alg", "alg_temp", "top_p", "top_k", "threshold", "cache"}),
    "variable_infill": frozenset({"alg", "alg_temp", "top_p", "top_k"}),
}
#: Where the variable-length middle starts: this fraction of `max_new_tokens` as masks.
VARIABLE_INFILL_START_FRACTION = 4
#: Dream's block sampler block length when a cache or threshold asks for blocks and none is given.
DREAM_BLOCK_LENGTH = 32


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample; None means the model's default (after `resolve`, only the unused stay None)."""

    max_new_tokens: int | None = None
    steps: int | None = None
    block_length: int | None = None
    temperature: float | None = None
    seed: int | None = None
    chat: bool | None = None
    threshold: float | None = None
    cache: str | None = None
    remasking: str | None = None
    cfg_scale: float | None = None
    alg: str | None = None
    alg_temp: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    resolved: bool = False

    def effective(self, sampler: Sampler) -> dict[str, Any]:
        """The options that ran, for the user to see and rerun (only those the sampler reads)."""
        keys = {"max_new_tokens", "temperature", "seed"} | SAMPLER_OPTIONS[sampler]
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in keys}


def sampler_for(spec: ModelSpec, job: Job) -> Sampler:
    """Variable-length infill has its own sampler; fixed-length work runs the family's."""
    if job == "variable_infill":
        return "variable_infill"
    return "llada" if spec.family == "llada" else "dream"


def resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None = None) -> SamplingOptions:
    """Every default filled and every rule checked; `length` is a fixed-length infill's gap.

    Raises:
        ValidationError: the job is not one the model can do, an option does not apply to
            its sampler, or the schedule does not fit.
    """
    if options.resolved:
        return options
    capability = "infill" if job == "infill" else job
    if capability not in spec.capabilities:
        raise ValidationError(f"model {spec.id} does not support {capability.replace('_', ' ')}")
    sampler = sampler_for(spec, job)
    allowed = SAMPLER_OPTIONS[sampler]
    for name in sorted(set().union(*SAMPLER_OPTIONS.values()) - allowed):
        if getattr(options, name) is not None:
            where = "variable-length infilling" if sampler == "variable_infill" else f"{spec.family} models"
            raise ValidationError(f"{name} does not apply to {where}")
    d = spec.defaults
    n = length or options.max_new_tokens or d.max_new_tokens
    resolved = replace(
        options,
        max_new_tokens=n,
        temperature=d.temperature if options.temperature is None else options.temperature,
        seed=secrets.randbelow(2**31) if options.seed is None else options.seed,
        chat=spec.chat if options.chat is None else options.chat,
        resolved=True,
    )
    if sampler == "variable_infill":
        return replace(resolved, alg=options.alg or d.alg, alg_temp=options.alg_temp or 0.0,
                       top_p=_default(options.top_p, d.top_p), top_k=_default(options.top_k, d.top_k))
    cache = options.cache or d.cache
    threshold = _default(options.threshold, d.threshold)
    block = options.block_length
    if block is None and (job == "infill" or (sampler == "dream" and cache == "none" and threshold is None)):
        block = n  # one block: the whole gap, or Dream's whole-span sampler
    if block is None:
        wanted = d.block_length if sampler == "llada" else DREAM_BLOCK_LENGTH
        block = wanted if n % wanted == 0 else n
    if n % block:
        raise ValidationError(f"block_length {block} must divide max_new_tokens {n}")
    blocks = n // block
    steps = options.steps
    if steps is None:
        steps = max(blocks, min(d.steps, n) // blocks * blocks)
    elif not blocks <= steps <= n or steps % blocks:
        raise ValidationError(
            f"steps must be a multiple of the {blocks} block(s) between {blocks} and max_new_tokens ({n}), got {steps}"
        )
    resolved = replace(resolved, steps=steps, block_length=block, cache=cache, threshold=threshold)
    if sampler == "llada":
        return replace(resolved, remasking=options.remasking or d.remasking, cfg_scale=options.cfg_scale or 0.0)
    return replace(resolved, alg=options.alg or d.alg, alg_temp=options.alg_temp or 0.0,
                   top_p=_default(options.top_p, d.top_p), top_k=_default(options.top_k, d.top_k))


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value
