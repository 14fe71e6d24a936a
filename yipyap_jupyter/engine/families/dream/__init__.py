"""Dream (Dream-org/Dream-v0-Instruct-7B, -Base-7B, and the code models DiffuCoder and Dream-Coder): masked
whole-canvas diffusion on a Qwen2.5 layout.

Our own network (`network.py`, Qwen2 parameter names, bidirectional), `config.json` with
`model_type` "Dream" (`config.py`), and Dream's sampler (`sampler.py`: `diffusion_generate`
over the whole span, or Fast-dLLM's block-wise variant with its threshold and caches). Each
position's prediction is read from the output one position to its left (`shift_logits`).

Defaults: entropy, temperature 0.2, top_p 0.95, top_k 50: what the official
`diffusion_generate` runs with under transformers 4, whose legacy generation defaults carry
top_k=50; the 7B models default to Fast-dLLM's dual cache with threshold 0.9 (see `llada`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...checkpoint.files import has_expand_token
from ...options import (
    BLOCK_LENGTH,
    CACHE,
    STEPS,
    TEMPERATURE,
    THRESHOLD,
    TOP_K,
    TOP_P,
    Job,
    Option,
    Sampler,
    SamplingOptions,
    default,
)
from ...samplers.block_schedule import resolve_blocks
from ...specs import FamilyTokens, ModelSpec
from .. import Family

if TYPE_CHECKING:
    from torch import nn

    from ...model import DiffusionModel
    from ...samplers.base import Program

DREAM_TOKENS = FamilyTokens(mask="<|mask|>", eos="<|endoftext|>", eot="<|im_end|>", bos="<|beginoftext|>")

ALG = Option("alg", str, "Dream and variable-length infill: how positions are ranked",
             choices=("origin", "maskgit_plus", "topk_margin", "entropy"), default="entropy")
ALG_TEMP = Option("alg_temp", float, "Dream: 0 commits the most confident positions, > 0 samples them", ge=0.0, le=10.0,
                  default="0", metavar="T")
#: How Dream's samplers (and DreamOn's variable-length infill) draw and rank tokens.
TOKEN_SHAPING = (TEMPERATURE, ALG, ALG_TEMP, TOP_P, TOP_K)
#: Dream's block sampler's block length when a cache or threshold asks for blocks and none is given.
BLOCK = 32

DREAM_DEFAULTS = SamplingOptions(max_new_tokens=128, steps=128, block_length=32, temperature=0.2, top_p=0.95, top_k=50,
                                 threshold=0.9, cache="dual")
LOCAL_DEFAULTS = DREAM_DEFAULTS.replace(threshold=None, cache="none")

# Two code models on Dream's network and sampler (`config.json` says "Dream"). Their sampling defaults are
# their READMEs' `diffusion_generate` calls (alg entropy, alg_temp 0, one token per step); top_k 50 and
# Fast-dLLM's dual cache with threshold 0.9 are kept from Dream 7B (their remote code is Dream's, run under
# transformers 4; their generation_config.json files were not read). Their context lengths are read from their
# config.json once downloaded.
#: apple/ml-diffucoder's README, "Usage for Instruct model": 256 tokens in 256 steps, temperature 0.4 (the base
#: model's example and the paper's default: 0.2), top_p 0.95; a Qwen chat prompt (its tokenizer ships
#: chat_template.jinja); the answer ends at <|im_end|>, then `<|dlm_pad|>` fills the canvas (the README cuts
#: there). A tokenizer without `<|dlm_pad|>` ends at its own end-of-text token.
DIFFUCODER_TOKENS = FamilyTokens(mask="<|mask|>", eos="<|dlm_pad|>", eot="<|im_end|>", bos="<|beginoftext|>")
DIFFUCODER_DEFAULTS = DREAM_DEFAULTS.replace(max_new_tokens=256, steps=256, temperature=0.4)
#: DreamLM/Dream-Coder's README quick start: 768 tokens in 768 steps, temperature 0.1, top_p 0.95, through the
#: tokenizer's chat template, the text cut at its end-of-text token; Dream's tokens.
DREAM_CODER_DEFAULTS = DREAM_DEFAULTS.replace(max_new_tokens=768, steps=768, temperature=0.1)


def resolve_shaping(options: SamplingOptions, defaults: SamplingOptions) -> SamplingOptions:
    """Temperature, alg, alg_temp, top_p and top_k filled in from the model's defaults."""
    return options.replace(temperature=default(options.temperature, defaults.temperature),
                           alg=options.alg or defaults.alg or "entropy", alg_temp=options.alg_temp or 0.0,
                           top_p=default(options.top_p, defaults.top_p), top_k=default(options.top_k, defaults.top_k))


def _resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None) -> SamplingOptions:
    options = resolve_blocks(options, job, spec.defaults, block_length=BLOCK, whole_span=True)
    return resolve_shaping(options, spec.defaults)


def _program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    from .sampler import model_program

    return model_program(model, before, after, options)


def _network(config: dict[str, Any]) -> nn.Module:
    from .config import DreamConfig
    from .network import DreamModel

    return DreamModel(DreamConfig.from_dict(config))


def is_dream(config: dict[str, Any]) -> bool:
    """Dream and DreamOn checkpoints both say `model_type` "Dream"."""
    return str(config.get("model_type", "")).lower() == "dream"


DREAM_SAMPLER = Sampler("{family} models", (STEPS, BLOCK_LENGTH, *TOKEN_SHAPING, THRESHOLD, CACHE), _resolve,
                        program=_program)

DREAM = Family(
    name="dream",
    kind="masked",
    recognises=lambda config, directory: is_dream(config) and not has_expand_token(directory),
    tokens=DREAM_TOKENS,
    samplers={"generate": DREAM_SAMPLER, "infill": DREAM_SAMPLER},
    local_spec=lambda model_id, directory: ModelSpec(model_id, model_id, "dream", DREAM_TOKENS, LOCAL_DEFAULTS,
                                                     ("generate", "infill"), shift_logits=True),
    network=_network,
    models=(
        ModelSpec("dream-v0-instruct-7b", "Dream v0 Instruct 7B", "dream", DREAM_TOKENS, DREAM_DEFAULTS,
                  ("generate", "infill"), chat=True, repo_id="Dream-org/Dream-v0-Instruct-7B", shift_logits=True),
        ModelSpec("dream-v0-base-7b", "Dream v0 Base 7B", "dream", DREAM_TOKENS, DREAM_DEFAULTS,
                  ("generate", "infill"), repo_id="Dream-org/Dream-v0-Base-7B", shift_logits=True),
        # 7.6B parameters: its four bf16 shards hold 15.2 GB
        ModelSpec("diffucoder-7b-instruct", "DiffuCoder 7B Instruct (Apple, code)", "dream", DIFFUCODER_TOKENS,
                  DIFFUCODER_DEFAULTS, ("generate", "infill"), chat=True, code=True,
                  repo_id="apple/DiffuCoder-7B-Instruct", shift_logits=True, parameters=7_615_000_000),
        ModelSpec("dream-coder-7b-instruct", "Dream-Coder v0 Instruct 7B (code)", "dream", DREAM_TOKENS,
                  DREAM_CODER_DEFAULTS, ("generate", "infill"), chat=True, code=True,
                  repo_id="Dream-org/Dream-Coder-v0-Instruct-7B", shift_logits=True),
    ),
)
