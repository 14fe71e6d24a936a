"""LLaDA (GSAI-ML/LLaDA-8B-Instruct, -8B-Base, LLaDA-1.5) and the package's `tiny`: masked whole-canvas diffusion.

Our own network (`network.py`, the official parameter names), `config.json` with
`model_type` "llada" (`config.py`), and LLaDA's sampler (`sampler.py`: semi-autoregressive
blocks, low-confidence or random remasking, classifier-free guidance, Fast-dLLM's threshold
and caches). A LLaDA-architecture checkpoint whose tokenizer has `<|expand|>` (like `tiny`)
also infills variable-length, with DreamOn's sampler.

Defaults follow the official demos (steps = gen length, block 32, temperature 0,
low-confidence remasking). The 8B models default to Fast-dLLM's dual cache with confidence
threshold 0.9: its paper measures 8x (256 tokens) to 27x (1024) the reference speed for about
one point of GSM8K, the trade a notebook user waiting for an answer wants. `tiny` keeps the
exact sampler (`cache="none"`, no threshold): it is rarely confident, so a threshold saves
little, and the approximate cache costs it agreement with its own plain output. A local
checkpoint directory may be any size: it gets the exact sampler unless the request asks for more.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ....errors import ValidationError
from ...checkpoint.files import has_expand_token
from ...options import BLOCK_LENGTH, CACHE, STEPS, TEMPERATURE, THRESHOLD, Job, Option, Sampler, SamplingOptions, default
from ...samplers.block_schedule import resolve_blocks
from ...specs import FamilyTokens, ModelSpec
from .. import Family, has_model_type
from ..dreamon import VARIABLE_INFILL

if TYPE_CHECKING:
    from torch import nn

    from ...model import DiffusionModel
    from ...samplers.base import Program

LLADA_TOKENS = FamilyTokens(mask="<|mdm_mask|>", eos="<|endoftext|>", eot="<|eot_id|>", bos="<|startoftext|>")
TINY_TOKENS = FamilyTokens(mask="<|mdm_mask|>", eos="<|endoftext|>", bos="<|startoftext|>", expand="<|expand|>")

#: LLaDA's remasking; SDAR's strategies share the option (`families.sdar`), each family checks its own.
LLADA_REMASKING = ("low_confidence", "random")
REMASKING = Option("remasking", str, "which predictions to commit first (LLaDA: low_confidence or random; SDAR: "
                   "low_confidence_dynamic, low_confidence_static or sequential)",
                   choices=(*LLADA_REMASKING, "low_confidence_dynamic", "low_confidence_static", "sequential"))
CFG_SCALE = Option("cfg_scale", float, "LLaDA: classifier-free guidance scale (0: none)", ge=0.0, le=20.0, default="0",
                   metavar="S")

LLADA_DEFAULTS = SamplingOptions(max_new_tokens=128, steps=128, block_length=32, temperature=0.0, threshold=0.9,
                                 cache="dual")
LOCAL_DEFAULTS = LLADA_DEFAULTS.replace(threshold=None, cache="none")
TINY_DEFAULTS = SamplingOptions(max_new_tokens=64, steps=32, block_length=32, temperature=0.0)
WITH_EXPAND: tuple[Job, ...] = ("generate", "infill", "variable_infill")


def _resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None) -> SamplingOptions:
    d = spec.defaults
    options = resolve_blocks(options, job, d, block_length=d.block_length, whole_span=False)
    if options.remasking is not None and options.remasking not in LLADA_REMASKING:
        raise ValidationError(f"remasking {options.remasking!r} does not apply to llada models: "
                              f"use {' or '.join(LLADA_REMASKING)}")
    return options.replace(temperature=default(options.temperature, d.temperature),
                           remasking=options.remasking or d.remasking or "low_confidence",
                           cfg_scale=options.cfg_scale or 0.0)


def _program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    from .sampler import model_program

    return model_program(model, before, after, options)


def _network(config: dict[str, Any]) -> nn.Module:
    from .config import LLaDAConfig
    from .network import LLaDAModel

    return LLaDAModel(LLaDAConfig.from_dict(config))


def _local_spec(model_id: str, directory: Path) -> ModelSpec:
    if has_expand_token(directory):
        return ModelSpec(model_id, model_id, "llada", TINY_TOKENS, LOCAL_DEFAULTS, WITH_EXPAND)
    return ModelSpec(model_id, model_id, "llada", LLADA_TOKENS, LOCAL_DEFAULTS, ("generate", "infill"))


LLADA_SAMPLER = Sampler("{family} models", (STEPS, BLOCK_LENGTH, TEMPERATURE, REMASKING, CFG_SCALE, THRESHOLD, CACHE),
                        _resolve, program=_program)

LLADA = Family(
    name="llada",
    kind="masked",
    recognises=has_model_type("llada"),
    tokens=LLADA_TOKENS,
    samplers={"generate": LLADA_SAMPLER, "infill": LLADA_SAMPLER, "variable_infill": VARIABLE_INFILL},
    local_spec=_local_spec,
    network=_network,
    models=(
        ModelSpec("tiny", "yipyap tiny (LLaDA architecture, Python stdlib)", "llada", TINY_TOKENS, TINY_DEFAULTS,
                  WITH_EXPAND, code=True, shipped=True),
        ModelSpec("llada-8b-instruct", "LLaDA 8B Instruct", "llada", LLADA_TOKENS, LLADA_DEFAULTS,
                  ("generate", "infill"), chat=True, repo_id="GSAI-ML/LLaDA-8B-Instruct"),
        ModelSpec("llada-8b-base", "LLaDA 8B Base", "llada", LLADA_TOKENS, LLADA_DEFAULTS,
                  ("generate", "infill"), repo_id="GSAI-ML/LLaDA-8B-Base"),
        ModelSpec("llada-1.5", "LLaDA 1.5 (8B, VRPO)", "llada", LLADA_TOKENS, LLADA_DEFAULTS,
                  ("generate", "infill"), chat=True, repo_id="GSAI-ML/LLaDA-1.5"),
    ),
)
