"""The model families: one folder each (`engine/families/<family>/`), one line each in `FAMILIES`.

A family's folder holds everything that kind of checkpoint is: its network (our own
module, or the library's class where the library has it natively), its config and how
its checkpoints are recognised (`model_type` in `config.json`), its tokens and sampling
defaults, the options its samplers read, its sampler programs, and its known models. The
folder's `__init__.py` describes it as one `Family` and imports no torch, so listing
models and validating requests stay cheap; networks and samplers are imported when a
model loads or runs.

Adding a family: its folder, and its line in `FAMILIES`. Nothing else changes: the
registry lists its models, a checkpoint directory of its `model_type` loads, the request
types and every view offer its options, and the batch runs its programs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ...errors import ModelLoadingError
from ..checkpoint.files import read_config
from ..options import SHARED_OPTIONS, Job, Option, Sampler, SamplingOptions
from ..specs import FamilyTokens, ModelSpec

if TYPE_CHECKING:
    import torch
    from torch import nn

#: How a family's sampler denoises: masked whole-canvas (LLaDA, Dream: masks committed and never
#: remasked), uniform-state canvases (DiffusionGemma: random tokens re-noised until accepted), or
#: blocks with an exact key/value cache (LLaDA 2.x, SDAR: finished blocks are cached exactly).
Denoising = Literal["masked", "uniform", "block"]


@dataclass(frozen=True)
class Family:
    """Everything the engine needs to know about one family of checkpoints.

    Attributes:
        name: the family's name (`ModelInfo.family`, error messages).
        kind: how its sampler denoises (see `Denoising`), said for readers and listings; the engine asks
            the samplers and networks themselves what they do (`Sampler`, `packs`, step states).
        recognises: whether a checkpoint directory is this family's, from its `config.json`
            (a dict) and the directory (for files beside it, such as the tokenizer).
        tokens: its special tokens, looked up in each checkpoint's tokenizer.
        samplers: the sampler of each job it can do ("generate", "infill", "variable_infill").
        local_spec: the spec of a checkpoint directory of this family that no registry entry
            names: (model id, directory) -> `ModelSpec`, with the family's local defaults.
        network: an uninitialised network for a `config.json` dict (parameters on the current
            default device: the loader builds it on the meta device and reads the weights in).
        load: loads a directory onto (device, dtype) itself, instead of `network` plus our
            safetensors reader (a library class with a loader of its own).
        checkpoint_defaults: the sampling defaults a checkpoint directory declares itself
            (DiffusionGemma's `generation_config.json`), laid over its spec's.
        models: its known models (the registry's entries).
    """

    name: str
    kind: Denoising
    recognises: Callable[[dict[str, Any], Path], bool]
    tokens: FamilyTokens
    samplers: Mapping[Job, Sampler]
    local_spec: Callable[[str, Path], ModelSpec]
    network: Callable[[dict[str, Any]], nn.Module]
    load: Callable[[Path, torch.device | str, torch.dtype], nn.Module] | None = None
    checkpoint_defaults: Callable[[Path], SamplingOptions] | None = None
    models: tuple[ModelSpec, ...] = field(default=())


def has_model_type(model_type: str) -> Callable[[dict[str, Any], Path], bool]:
    """A family's `recognises`: its checkpoints' `config.json` says `model_type` `model_type` (in any case)."""
    return lambda config, directory: str(config.get("model_type", "")).lower() == model_type


def _families() -> tuple[Family, ...]:
    from .diffusiongemma import DIFFUSIONGEMMA
    from .dream import DREAM
    from .dreamon import DREAMON
    from .llada import LLADA
    from .llada2 import LLADA2
    from .sdar import SDAR

    return (
        LLADA,
        DREAM,
        DREAMON,
        DIFFUSIONGEMMA,
        LLADA2,
        SDAR,
    )


FAMILIES: tuple[Family, ...] = _families()
KNOWN_MODELS: dict[str, ModelSpec] = {spec.id: spec for family_ in FAMILIES for spec in family_.models}


def family(name: str) -> Family:
    """The family called `name` (every spec names one of `FAMILIES`)."""
    return next(f for f in FAMILIES if f.name == name)


def detect(directory: Path | str) -> Family:
    """The family of a checkpoint directory, from its `config.json` (ModelLoadingError if none is ours)."""
    directory = Path(directory)
    config = read_config(directory)
    found = next((f for f in FAMILIES if f.recognises(config, directory)), None)
    if found is None:
        model_type = config.get("model_type", "")
        raise ModelLoadingError(f"unsupported model_type {model_type!r} in {directory}"
                                f" (supported: {', '.join(f.name for f in FAMILIES)})")
    return found


def with_checkpoint_defaults(spec: ModelSpec, directory: Path) -> ModelSpec:
    """`spec` with the defaults its checkpoint in `directory` declares itself laid over its own."""
    read = family(spec.family).checkpoint_defaults
    if read is None:
        return spec
    return replace(spec, defaults=spec.defaults.replace(**read(directory).given()))


def all_options() -> tuple[Option, ...]:
    """Every option any sampler reads, each once, in the order the families declare them.

    Two families that read an option of the same name share its declaration.
    """
    seen: dict[str, Option] = {option.name: option for option in SHARED_OPTIONS}
    for family_ in FAMILIES:
        for sampler in family_.samplers.values():
            for option in sampler.options:
                known = seen.setdefault(option.name, option)
                assert known is option, f"option {option.name} is declared twice"
    return tuple(seen.values())
