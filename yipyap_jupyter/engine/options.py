"""Sampler options: their declarations, the values of one run, and the one function that resolves them.

Every option a sampler reads is declared once as an `Option` (name, type, range, help,
where its default comes from), in the folder of the family whose sampler reads it, or
below when several families read it. From those declarations the request types
(`service/schemas.py`), the plan, the magic's and the CLI's arguments, the panels'
fields and the OpenAPI schema are made, so an option is never kept by hand in a view.

`SamplingOptions` holds the values of one run; an option not given reads as None (the
model's default applies). `resolve` fills the defaults from the `ModelSpec`, checks that
every option given applies to the sampler that will run (an option that does not is an
error naming it, never silently replaced), and hands the sampler's own rules (its
schedule, its defaults) to the sampler. The service's plan calls it once with the
user's settings and the request folded in; engine callers (tests, scripts) may call the
model directly and get the same resolution.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ValidationError

if TYPE_CHECKING:
    from ..cancel import CancelToken
    from .model import DiffusionModel
    from .samplers.base import Program, SamplerStep
    from .specs import ModelSpec

#: What a run does (and, in `ModelSpec.capabilities`, what a model can do); with the model's family it picks
#: the sampler.
Job = Literal["generate", "infill", "variable_infill"]
#: Largest number of new tokens, steps or block length one request may ask for.
MAX_TOKENS = 4096


@dataclass(frozen=True)
class Option:
    """One sampler option as every view offers it.

    Attributes:
        name: the request field (the CLI's and the magic's `--name-with-dashes`).
        type: int, float, str (with `choices`) or bool.
        help: one line for `--help`, the panels' tooltips and the OpenAPI description.
        default: where its default comes from, said to the user ("the model's", "0.9", ...).
        choices: the values a `str` option takes.
        ge, gt, le: the range of a number (pydantic's names).
        metavar: how `--help` names the value.
    """

    name: str
    type: type
    help: str
    default: str = "the model's default"
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


#: The options every sampler reads.
MAX_NEW_TOKENS = Option("max_new_tokens", int, "tokens to generate (infill: the gap's length)", ge=1, le=MAX_TOKENS,
                        default="the settings', else the model's", metavar="N")
SEED = Option("seed", int, "random seed, for repeatable output", ge=0, le=2**63 - 1, default="random", metavar="S")
#: Options that several families' samplers read (each family lists the ones it does).
STEPS = Option("steps", int, "denoising steps: in all (LLaDA, Dream), per block (LLaDA 2.x, SDAR), the most per canvas"
               " (DiffusionGemma)", ge=1, le=MAX_TOKENS, metavar="N")
BLOCK_LENGTH = Option("block_length", int, "semi-autoregressive block length", ge=1, le=MAX_TOKENS, metavar="N")
TEMPERATURE = Option("temperature", float, "sampling temperature (0: greedy)", ge=0.0, le=10.0, metavar="T")
TOP_P = Option("top_p", float, "nucleus sampling of each token (Dream, LLaDA 2.x, SDAR)", gt=0.0, le=1.0, metavar="P")
TOP_K = Option("top_k", int, "sample each token among the k most probable (Dream, LLaDA 2.x, SDAR)", ge=1,
               le=1_000_000, metavar="K")
THRESHOLD = Option("threshold", float,
                   "parallel decoding (Fast-dLLM): commit every masked position at least this confident each step",
                   gt=0.0, le=1.0, metavar="C")
CACHE = Option("cache", str, "block-wise key/value cache (Fast-dLLM): none, prefix or dual",
               choices=("none", "prefix", "dual"))
SHARED_OPTIONS = (MAX_NEW_TOKENS, SEED)


class SamplingOptions:
    """How to sample: option values by name; an option not given reads as None (its default applies).

    `SamplingOptions(steps=8, seed=3).steps == 8`, `.block_length is None`. After `resolve`
    (`resolved` is True) every option the sampler that runs reads is set.
    """

    __slots__ = ("_values", "resolved")

    def __init__(self, *, resolved: bool = False, **values: Any) -> None:
        object.__setattr__(self, "_values", {name: value for name, value in values.items() if value is not None})
        object.__setattr__(self, "resolved", resolved)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._values.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SamplingOptions are frozen: use replace()")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SamplingOptions) and (self._values, self.resolved) == (other._values, other.resolved)

    def __hash__(self) -> int:
        return hash((tuple(sorted(self._values.items())), self.resolved))

    def __repr__(self) -> str:
        given = ", ".join(f"{name}={value!r}" for name, value in self._values.items())
        return f"SamplingOptions({given}{', resolved=True' if self.resolved else ''})"

    def given(self) -> dict[str, Any]:
        """The options set (not None)."""
        return dict(self._values)

    def replace(self, **changes: Any) -> SamplingOptions:
        """A copy with `changes` (a None value unsets an option)."""
        resolved = changes.pop("resolved", self.resolved)
        return SamplingOptions(resolved=resolved, **{**self._values, **changes})

    def effective(self, sampler: Sampler) -> dict[str, Any]:
        """The options that ran, for the user to see and rerun (only those the sampler reads)."""
        return {option.name: self._values.get(option.name) for option in (*SHARED_OPTIONS, *sampler.options)}


#: Fills a sampler's defaults and checks its schedule: (options with the shared ones resolved, spec, job,
#: a fixed-length infill's gap) -> resolved options; raises ValidationError.
Resolver = Callable[["SamplingOptions", "ModelSpec", Job, "int | None"], SamplingOptions]
#: A row's program of a decoding batch: (model, tokens before the generated part, tokens after it, options).
ProgramMaker = Callable[["DiffusionModel", list[int], list[int], SamplingOptions], "Program"]
#: A sampler that runs alone (its canvas changes length between passes): the same arguments and the cancel token.
AloneMaker = Callable[["DiffusionModel", list[int], list[int], SamplingOptions, "CancelToken | None"],
                      Iterator["SamplerStep"]]


@dataclass(frozen=True)
class Sampler:
    """A sampler as the service and the model see it: the options it reads and how to run it.

    Attributes:
        name: what errors call it ("variable-length infilling"; "{family} models" names the model's family).
        options: what it reads beyond `max_new_tokens` and `seed`; any other option in a
            request is refused, naming it.
        resolve: its defaults and schedule rules (see `Resolver`).
        program: its program for a row of a `DecodingBatch` (most samplers); or
        alone: its steps when it cannot share a batch (a canvas that changes length).
    """

    name: str
    options: tuple[Option, ...]
    resolve: Resolver
    program: ProgramMaker | None = None
    alone: AloneMaker | None = None

    def reads(self, name: str) -> bool:
        return any(option.name == name for option in self.options)


def sampler_for(spec: ModelSpec, job: Job) -> Sampler:
    """The sampler that runs `job` on a model of `spec`'s family (ValidationError if it cannot)."""
    from .families import family

    capability = "infill" if job == "infill" else job
    sampler = family(spec.family).samplers.get(job)
    if capability not in spec.capabilities or sampler is None:
        can = " and ".join(c.replace("_", " ") for c in spec.capabilities)
        raise ValidationError(f"model {spec.id} does not support {capability.replace('_', ' ')}"
                              f" ({spec.family} models {'only ' if len(spec.capabilities) == 1 else ''}{can})")
    return sampler


def resolve(options: SamplingOptions, spec: ModelSpec, job: Job, length: int | None = None) -> SamplingOptions:
    """Every default filled and every rule checked; `length` is a fixed-length infill's gap.

    Raises:
        ValidationError: the job is not one the model can do, an option does not apply to
            its sampler, or the schedule does not fit.
    """
    if options.resolved:
        return options
    from .families import all_options

    sampler = sampler_for(spec, job)
    known = {option.name for option in all_options()} | {"chat"}
    for name in sorted(options.given()):
        if name not in known:
            raise ValidationError(f"unknown option {name}")
        if name not in {"max_new_tokens", "seed", "chat"} and not sampler.reads(name):
            raise ValidationError(f"{name} does not apply to {sampler.name.format(family=spec.family)}")
    defaults = spec.defaults
    resolved = options.replace(
        max_new_tokens=length or options.max_new_tokens or defaults.max_new_tokens,
        seed=secrets.randbelow(2**31) if options.seed is None else options.seed,
        chat=spec.chat if options.chat is None else options.chat,
    )
    return sampler.resolve(resolved, spec, job, length).replace(resolved=True)


def default(value: Any, fallback: Any) -> Any:
    """`value`, or `fallback` when it is None (0 and False are values)."""
    return fallback if value is None else value
