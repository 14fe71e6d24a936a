"""SDAR (JetLM/SDAR-1.7B/4B/8B-Chat) and TraDo (Gen-Verse/TraDo-8B-Instruct): block diffusion on Qwen3 layers.

The network is transformers' own Qwen3 layers with block-causal attention (`network.py`;
the checkpoints use Qwen3's parameter names), `config.json` with `model_type` "sdar", and
the block sampler with SDAR's remasking strategies (`sampler.py`); the exact block cache
by default (`cache="prefix"`; `"none"` recomputes every step). The 30B SDAR is a mixture of
experts (`SDARMoeForCausalLM`) and is not supported.

Defaults are `block_diffusion_generate`'s: block 4, 4 steps per block,
`low_confidence_dynamic` with threshold 0.85, temperature 1 without top-k or top-p.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ....errors import ValidationError
from ...options import BLOCK_LENGTH, CACHE, STEPS, TEMPERATURE, THRESHOLD, TOP_K, TOP_P, Job, Sampler, SamplingOptions
from ...samplers.block_options import resolve_block_options
from ...specs import FamilyTokens, ModelSpec
from .. import Family, has_model_type
from ..llada import REMASKING

if TYPE_CHECKING:
    from torch import nn

    from ...model import DiffusionModel
    from ...samplers.base import Program

SDAR_TOKENS = FamilyTokens(mask="<|MASK|>", eos="<|endoftext|>", eot="<|im_end|>")
#: SDAR's remasking strategies (the official `remasking_strategy`; its broken `entropy_bounded` left out).
SDAR_REMASKING = ("low_confidence_dynamic", "low_confidence_static", "sequential")

SDAR_DEFAULTS = SamplingOptions(max_new_tokens=256, steps=4, block_length=4, temperature=1.0, threshold=0.85,
                                remasking="low_confidence_dynamic", cache="prefix")

#: The package's `tiny-block` (SDAR format, `tiny`'s tokenizer; `scripts/train_tiny_block.py`).
TINY_BLOCK_TOKENS = FamilyTokens(mask="<|mdm_mask|>", eos="<|endoftext|>", bos="<|startoftext|>")
#: Chosen by measurement (`scripts/eval_continuations.py`, its model card): greedy decoding repeats lines, lower
#: thresholds (faster) break the parse rate; this is the fastest setting measured that keeps the card's targets.
TINY_BLOCK_DEFAULTS = SamplingOptions(max_new_tokens=64, steps=4, block_length=4, temperature=0.7, top_k=20,
                                      threshold=0.9, remasking="low_confidence_dynamic", cache="prefix")


def _resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None) -> SamplingOptions:
    if options.remasking is not None and options.remasking not in SDAR_REMASKING:
        raise ValidationError(f"remasking {options.remasking!r} does not apply to sdar models: "
                              f"use {', '.join(SDAR_REMASKING)}")
    options = resolve_block_options(options, spec.defaults, "sdar")
    return options.replace(remasking=options.remasking or spec.defaults.remasking or "low_confidence_dynamic")


def _program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    from .sampler import model_program

    return model_program(model, before, after, options)


def _network(config: dict[str, Any]) -> nn.Module:
    from .network import SDARConfig, SDARModel

    return SDARModel(SDARConfig.from_dict(config))


SDAR_SAMPLER = Sampler("{family} models", (STEPS, BLOCK_LENGTH, TEMPERATURE, TOP_K, TOP_P, THRESHOLD, CACHE,
                                           REMASKING), _resolve, program=_program)


def _model(model_id: str, name: str, repo_id: str, parameters: int) -> ModelSpec:
    return ModelSpec(model_id, name, "sdar", SDAR_TOKENS, SDAR_DEFAULTS, ("generate",), chat=True, repo_id=repo_id,
                     parameters=parameters, context_length=32768)


SDAR = Family(
    name="sdar",
    kind="block",
    recognises=has_model_type("sdar"),
    tokens=SDAR_TOKENS,
    samplers={"generate": SDAR_SAMPLER},
    local_spec=lambda model_id, directory: ModelSpec(model_id, model_id, "sdar", SDAR_TOKENS, SDAR_DEFAULTS,
                                                     ("generate",), chat=True),
    network=_network,
    models=(
        ModelSpec("tiny-block", "yipyap tiny-block (SDAR architecture, Python stdlib)", "sdar", TINY_BLOCK_TOKENS,
                  TINY_BLOCK_DEFAULTS, ("generate",), code=True, shipped=True),
        _model("sdar-1.7b-chat", "SDAR 1.7B Chat", "JetLM/SDAR-1.7B-Chat", 2_030_000_000),
        _model("sdar-4b-chat", "SDAR 4B Chat", "JetLM/SDAR-4B-Chat", 4_020_000_000),
        _model("sdar-8b-chat", "SDAR 8B Chat", "JetLM/SDAR-8B-Chat", 8_190_000_000),
        _model("trado-8b-instruct", "TraDo 8B Instruct (SDAR, RL-tuned)", "Gen-Verse/TraDo-8B-Instruct",
               8_190_000_000),
    ),
)
