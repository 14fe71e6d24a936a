"""DreamOn (Dream-org/DreamOn-v0-7B): Dream's network, and variable-length infilling.

A DreamOn checkpoint is a Dream checkpoint (`model_type` "Dream") whose tokenizer has
`<|expand|>`. Its fixed-length infill runs Dream's sampler; its variable-length infill
(`sampler.py`) lets the model expand a mask into two or delete it, so the middle's length
changes between passes and the sampler runs alone, outside a decoding batch. Every model
whose tokenizer has `<|expand|>` and a delete token (LLaDA's `tiny` too) can run it.

Defaults: entropy, temperature 0.2, top_p 0.9, one token per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...checkpoint.files import has_expand_token
from ...options import Job, Sampler, SamplingOptions
from ...specs import FamilyTokens, ModelSpec
from .. import Family
from ..dream import DREAM_SAMPLER, TOKEN_SHAPING, is_dream, resolve_shaping

if TYPE_CHECKING:
    from torch import nn

    from ....cancel import CancelToken
    from ...model import DiffusionModel
    from ...samplers.base import SamplerStep

DREAMON_TOKENS = FamilyTokens(mask="<|mask|>", eos="<|endoftext|>", eot="<|im_end|>", bos="<|beginoftext|>",
                              expand="<|expand|>")
DREAMON_DEFAULTS = SamplingOptions(max_new_tokens=64, steps=64, block_length=64, temperature=0.2, top_p=0.9)


def _resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None) -> SamplingOptions:
    return resolve_shaping(options, spec.defaults)


def _alone(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions,
           cancel: CancelToken | None) -> Iterator[SamplerStep]:
    from .sampler import model_steps

    return model_steps(model, before, after, options, cancel)


def _network(config: dict[str, Any]) -> nn.Module:
    from ..dream import DREAM

    return DREAM.network(config)


VARIABLE_INFILL = Sampler("variable-length infilling", TOKEN_SHAPING, _resolve, alone=_alone)

DREAMON = Family(
    name="dreamon",
    kind="masked",
    recognises=lambda config, directory: is_dream(config) and has_expand_token(directory),
    tokens=DREAMON_TOKENS,
    samplers={"infill": DREAM_SAMPLER, "variable_infill": VARIABLE_INFILL},
    local_spec=lambda model_id, directory: ModelSpec(model_id, model_id, "dreamon", DREAMON_TOKENS, DREAMON_DEFAULTS,
                                                     ("infill", "variable_infill"), shift_logits=True),
    network=_network,
    models=(
        ModelSpec("dreamon-v0-7b", "DreamOn v0 7B (variable-length infilling)", "dreamon", DREAMON_TOKENS,
                  DREAMON_DEFAULTS, ("infill", "variable_infill"), repo_id="Dream-org/DreamOn-v0-7B",
                  shift_logits=True),
    ),
)
