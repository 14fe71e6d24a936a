"""DiffusionGemma (google/diffusiongemma-26B-A4B-it): uniform-state canvas diffusion, no mask token.

The network is transformers' own `DiffusionGemmaForBlockDiffusion` (`network.py` drives it:
a causal encoder over the prompt and finished canvases into a key/value cache, a
bidirectional decoder over the canvas with self-conditioning); checkpoints say `model_type`
"diffusion_gemma" and are what `save_pretrained` writes. `sampler.py` is the denoising loop
as our program, token-identical to the library's seeded `generate`.

Options: `steps` (the most denoising steps per canvas), `entropy_bound`, `t_min`, `t_max`,
`stability_threshold`, `confidence_threshold`, `max_new_tokens` (rounded up to whole
canvases, as `generate` does) and `seed`. Their defaults are the checkpoint's
`generation_config.json`, else transformers' fallbacks (`GENERATE_DEFAULTS`). Text prompts
only; it does not infill (fixed or variable): such a request is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...options import STEPS, Job, Option, Sampler, SamplingOptions, default
from ...specs import FamilyTokens, ModelSpec
from .. import Family

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ...model import DiffusionModel
    from ...samplers.base import Program

#: No mask token; the end tokens are the tokenizer's `<eos>` and those the checkpoint's generation config names
#: (what `generate` stops at), so the text ends where the library's output does.
GEMMA_TOKENS = FamilyTokens(mask=None, eos="<eos>")

ENTROPY_BOUND = Option("entropy_bound", float,
                       "DiffusionGemma: accept the lowest-entropy positions while their summed entropy, less the "
                       "largest, stays under this", gt=0.0, le=1000.0, default="the checkpoint's", metavar="E")
T_MIN = Option("t_min", float, "DiffusionGemma: the temperature at the last denoising step", gt=0.0, le=10.0,
               default="the checkpoint's", metavar="T")
T_MAX = Option("t_max", float, "DiffusionGemma: the temperature at the first denoising step", gt=0.0, le=10.0,
               default="the checkpoint's", metavar="T")
STABILITY_THRESHOLD = Option("stability_threshold", int,
                             "DiffusionGemma: a canvas may stop once its draft is unchanged for this many steps "
                             "(0: always stable)", ge=0, le=4096, default="the checkpoint's", metavar="N")
CONFIDENCE_THRESHOLD = Option("confidence_threshold", float,
                              "DiffusionGemma: ... and its mean entropy is under this", ge=0.0, le=1000.0,
                              default="the checkpoint's", metavar="C")

#: transformers' own fallbacks (`DiffusionGemmaGenerationConfig._get_default_generation_params`) for what a
#: checkpoint's generation_config.json leaves unset; a test keeps the two equal.
GENERATE_DEFAULTS = SamplingOptions(max_new_tokens=256, steps=48, entropy_bound=0.1, t_min=0.4, t_max=0.8,
                                    stability_threshold=1, confidence_threshold=0.005)
#: generation_config.json's names for our options.
GENERATION_CONFIG_NAMES = {"max_new_tokens": "max_new_tokens", "max_denoising_steps": "steps", "t_min": "t_min",
                           "t_max": "t_max", "stability_threshold": "stability_threshold",
                           "confidence_threshold": "confidence_threshold"}


def checkpoint_defaults(directory: Path) -> SamplingOptions:
    """The sampling defaults a checkpoint's `generation_config.json` sets (none when it has no such file)."""
    try:
        raw = json.loads((Path(directory) / "generation_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return SamplingOptions()
    if not isinstance(raw, dict):
        return SamplingOptions()
    values = {ours: raw[theirs] for theirs, ours in GENERATION_CONFIG_NAMES.items() if raw.get(theirs) is not None}
    sampler_config = raw.get("sampler_config")
    if isinstance(sampler_config, dict) and sampler_config.get("entropy_bound") is not None:
        values["entropy_bound"] = sampler_config["entropy_bound"]
    return SamplingOptions(**values)


def _resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None) -> SamplingOptions:
    d = spec.defaults
    filled = {option.name: default(getattr(options, option.name), default(getattr(d, option.name),
                                                                          getattr(GENERATE_DEFAULTS, option.name)))
              for option in GEMMA_SAMPLER.options}
    return options.replace(**filled)


def _program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    from .sampler import model_program

    return model_program(model, before, after, options)


def _network(config: dict[str, Any]) -> nn.Module:
    from .network import DiffusionGemmaNetwork

    return DiffusionGemmaNetwork.empty(config)


def _load(directory: Path, device: torch.device | str, dtype: torch.dtype) -> nn.Module:
    from .network import DiffusionGemmaNetwork

    return DiffusionGemmaNetwork.load(directory, device, dtype)


def _local_spec(model_id: str, directory: Path) -> ModelSpec:
    """A directory no registry entry names: its prompt is not wrapped in a chat template unless a request asks
    (`chat=true`), as for every family's local directories."""
    return ModelSpec(model_id, model_id, "diffusiongemma", GEMMA_TOKENS, checkpoint_defaults(directory), ("generate",))


GEMMA_SAMPLER = Sampler("{family} models", (STEPS, ENTROPY_BOUND, T_MIN, T_MAX, STABILITY_THRESHOLD,
                                            CONFIDENCE_THRESHOLD), _resolve, program=_program)

DIFFUSIONGEMMA = Family(
    name="diffusiongemma",
    kind="uniform",
    recognises=lambda config, directory: config.get("model_type") == "diffusion_gemma",
    tokens=GEMMA_TOKENS,
    samplers={"generate": GEMMA_SAMPLER},
    local_spec=_local_spec,
    network=_network,
    load=_load,
    checkpoint_defaults=checkpoint_defaults,
    models=(
        ModelSpec("diffusiongemma-26b-a4b-it", "DiffusionGemma 26B A4B it (uniform-state diffusion, MoE)",
                  "diffusiongemma", GEMMA_TOKENS, SamplingOptions(), ("generate",), chat=True,
                  repo_id="google/diffusiongemma-26B-A4B-it", parameters=26_000_000_000,
                  # transformers' DiffusionGemmaTextConfig default, until the checkpoint's config.json is cached
                  context_length=131_072),
    ),
)
