"""LLaDA 2.x (inclusionAI/LLaDA2.0-mini, LLaDA2.1-mini, LLaDA2.0-flash): block diffusion on a mixture of experts.

Our own network (`network.py`: `LLaDA2MoeModelLM`'s parameter names, BailingMoeV2 layout,
block-causal attention), `config.json` with `model_type` "llada2_moe" (`config.py`), and the
block sampler with LLaDA 2.0's threshold rule or 2.1's token editing (`sampler.py`); the
exact block cache by default (`cache="prefix"`; `"none"` recomputes as the official loop).

Defaults are the official ones: 2.0 block 32, 32 steps per block, threshold 0.95,
greedy; 2.1's quality mode threshold 0.7 with editing 0.5 and 16 steps after a block's
last mask. A local checkpoint directory gets 2.0's behaviour (editing off, `eos_early_stop`
off); the options switch the rest on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ....errors import ValidationError
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
from ...samplers.block_options import resolve_block_options
from ...specs import FamilyTokens, ModelSpec
from .. import Family, has_model_type

if TYPE_CHECKING:
    from torch import nn

    from ...model import DiffusionModel
    from ...samplers.base import Program

LLADA2_TOKENS = FamilyTokens(mask="<|mask|>", eos="<|endoftext|>")

EOS_EARLY_STOP = Option("eos_early_stop", bool,
                        "LLaDA 2.x: stop as soon as an end token is committed (2.0: mid-block; 2.1: after its block)",
                        default="off")
EDITING_THRESHOLD = Option("editing_threshold", float,
                           "LLaDA 2.1 token editing: replace a generated token when another is this probable",
                           ge=0.0, le=1.0, metavar="C")
MAX_POST_STEPS = Option("max_post_steps", int, "LLaDA 2.1 token editing: most editing steps after a block's last mask",
                        ge=0, le=1024, metavar="N")

LLADA20_DEFAULTS = SamplingOptions(max_new_tokens=256, steps=32, block_length=32, temperature=0.0, threshold=0.95,
                                   cache="prefix", eos_early_stop=False)
#: 2.1's quality mode; it stops after the block holding the end token (what it returns is cut there anyway)
LLADA21_DEFAULTS = LLADA20_DEFAULTS.replace(threshold=0.7, editing_threshold=0.5, max_post_steps=16,
                                            eos_early_stop=True)


def _resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None) -> SamplingOptions:
    d = spec.defaults
    editing = default(options.editing_threshold, d.editing_threshold)
    post_steps = default(options.max_post_steps, d.max_post_steps)
    if options.steps is not None and (editing is not None or post_steps is not None):
        raise ValidationError("steps does not apply with LLaDA 2.1's token editing (editing_threshold, max_post_steps):"
                              " its masks are committed by the threshold")
    options = resolve_block_options(options, d, "llada2")
    return options.replace(eos_early_stop=default(options.eos_early_stop, bool(d.eos_early_stop)),
                           editing_threshold=editing, max_post_steps=post_steps)


def _program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    from .sampler import model_program

    return model_program(model, before, after, options)


def _network(config: dict[str, Any]) -> nn.Module:
    from .config import LLaDA2Config
    from .network import LLaDA2Model

    return LLaDA2Model(LLaDA2Config.from_dict(config))


def tokens_of(directory: Path, fallback: FamilyTokens) -> FamilyTokens:
    """The family's tokens with the mask token the checkpoint's tokenizer_config.json names, when it names one."""
    path = directory / "tokenizer_config.json"
    try:
        mask = json.loads(path.read_text(encoding="utf-8")).get("mask_token") if path.is_file() else None
    except ValueError:
        mask = None
    if isinstance(mask, dict):  # an AddedToken written out
        mask = mask.get("content")
    return FamilyTokens(mask=mask, eos=fallback.eos, eot=fallback.eot) if isinstance(mask, str) and mask else fallback


LLADA2_SAMPLER = Sampler("{family} models", (STEPS, BLOCK_LENGTH, TEMPERATURE, TOP_K, TOP_P, THRESHOLD, CACHE,
                                             EOS_EARLY_STOP, EDITING_THRESHOLD, MAX_POST_STEPS), _resolve,
                         program=_program)


def _model(model_id: str, name: str, repo_id: str, defaults: SamplingOptions, parameters: int,
           context_length: int | None) -> ModelSpec:
    return ModelSpec(model_id, name, "llada2", LLADA2_TOKENS, defaults, ("generate",), chat=True, repo_id=repo_id,
                     parameters=parameters, context_length=context_length)


LLADA2 = Family(
    name="llada2",
    kind="block",
    recognises=has_model_type("llada2_moe"),
    tokens=LLADA2_TOKENS,
    samplers={"generate": LLADA2_SAMPLER},
    local_spec=lambda model_id, directory: ModelSpec(model_id, model_id, "llada2",
                                                     tokens_of(Path(directory), LLADA2_TOKENS), LLADA20_DEFAULTS,
                                                     ("generate",), chat=True),
    network=_network,
    models=(
        _model("llada2.0-mini", "LLaDA2.0 mini (16B MoE, 1.4B active)", "inclusionAI/LLaDA2.0-mini",
               LLADA20_DEFAULTS, 16_255_000_000, 32768),
        _model("llada2.1-mini", "LLaDA2.1 mini (16B MoE, token editing)", "inclusionAI/LLaDA2.1-mini",
               LLADA21_DEFAULTS, 16_255_000_000, 32768),
        # its context length is read from its config.json once downloaded
        _model("llada2.0-flash", "LLaDA2.0 flash (100B MoE, 6.1B active; about 200 GB in bf16)",
               "inclusionAI/LLaDA2.0-flash", LLADA20_DEFAULTS, 103_000_000_000, None),
    ),
)
