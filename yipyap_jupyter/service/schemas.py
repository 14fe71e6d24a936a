"""The wire types: the requests (shared by HTTP, the magics, the panels, the CLI and the Python
client) and the model info every view shows.

This is the one module that validates a request: views build a `GenerateRequest` or
`InfillRequest` from what the user set (leaving the rest None) and never check values
themselves; the service checks the family-specific rules against the loaded model
once, in its plan (`service/plan.py`). Unknown fields, booleans for numbers, inf and
NaN are rejected here.

Per-family sampler options:

| option | applies to |
| --- | --- |
| `remasking`, `cfg_scale` | LLaDA-architecture models (fixed length) |
| `alg`, `alg_temp`, `top_p`, `top_k` | Dream / DreamOn, and every model's variable-length infill |
| `threshold`, `cache` | fixed-length sampling of every family (not variable-length infill) |

`temperature` is 0 (greedy) or at least `MIN_TEMPERATURE`: smaller positive values
overflow the Gumbel / softmax arithmetic, so they are refused rather than clamped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator

#: Longest prompt / prefix / suffix accepted, in characters; checked before anything is tokenised.
MAX_TEXT_CHARS = 32_768
#: Smallest positive sampling temperature (0 means greedy).
MIN_TEMPERATURE = 0.01
#: Largest number of new tokens, steps or block length one request may ask for.
MAX_TOKENS = 4096

Remasking = Literal["low_confidence", "random"]
DreamAlg = Literal["origin", "maskgit_plus", "topk_margin", "entropy"]
Cache = Literal["none", "prefix", "dual"]
Device = Literal["auto", "cuda", "mps", "cpu"]
DType = Literal["float32", "float16", "bfloat16"]

REMASKING: tuple[str, ...] = get_args(Remasking)
DREAM_ALGS: tuple[str, ...] = get_args(DreamAlg)
CACHES: tuple[str, ...] = get_args(Cache)

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]

#: Options that only LLaDA's fixed-length sampler reads.
LLADA_OPTIONS = ("remasking", "cfg_scale")
#: Options that only Dream's samplers (and variable-length infill) read.
DREAM_OPTIONS = ("alg", "alg_temp", "top_p", "top_k")
#: Options of fixed-length sampling only.
FIXED_LENGTH_OPTIONS = ("threshold", "cache")


class SamplingFields(BaseModel):
    """Sampling knobs common to generation and infilling; None means "not set" (a default applies)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    model: str | None = Field(None, min_length=1, max_length=4096, description="model id or local checkpoint directory")
    max_new_tokens: Int | None = Field(None, ge=1, le=MAX_TOKENS)
    steps: Int | None = Field(None, ge=1, le=MAX_TOKENS)
    block_length: Int | None = Field(None, ge=1, le=MAX_TOKENS)
    temperature: Float | None = Field(None, ge=0.0, le=10.0, description=f"0 (greedy) or >= {MIN_TEMPERATURE}")
    seed: Int | None = Field(None, ge=0, le=2**63 - 1)
    threshold: Float | None = Field(
        None, gt=0.0, le=1.0,
        description="parallel decoding (Fast-dLLM): commit every masked position at least this confident each step",
    )
    cache: Cache | None = Field(None, description="block-wise key/value cache (Fast-dLLM): none, prefix or dual")
    remasking: Remasking | None = Field(None, description="LLaDA: which predictions to commit first")
    cfg_scale: Float | None = Field(None, ge=0.0, le=20.0, description="LLaDA: classifier-free guidance")
    alg: DreamAlg | None = Field(None, description="Dream / variable-length infill: how positions are ranked")
    alg_temp: Float | None = Field(None, ge=0.0, le=10.0)
    top_p: Float | None = Field(None, gt=0.0, le=1.0)
    top_k: Int | None = Field(None, ge=1, le=1_000_000)
    chat: bool | None = Field(None, description="wrap the prompt in the model's chat template (chat models)")
    auto_trim: bool | None = None
    fix_punctuation: bool | None = None
    timeout: Float | None = Field(None, gt=0.0, le=3600.0)

    @field_validator("temperature")
    @classmethod
    def _stable_temperature(cls, value: float | None) -> float | None:
        if value is not None and 0 < value < MIN_TEMPERATURE:
            raise ValueError(f"must be 0 (greedy) or at least {MIN_TEMPERATURE}")
        return value

    def given(self) -> dict[str, Any]:
        """The fields the caller set (not None): what a view sends and what overrides defaults."""
        return self.model_dump(exclude_none=True)


class GenerateRequest(SamplingFields):
    """Continue `prompt`."""

    prompt: str = Field(max_length=MAX_TEXT_CHARS)

    @model_validator(mode="after")
    def _prompt_not_blank(self) -> GenerateRequest:
        if not self.prompt.strip():
            raise ValueError("prompt must not be empty")
        return self


class InfillRequest(SamplingFields):
    """Fill the gap between `prefix` and `suffix`.

    Fixed length: `length` tokens (default `max_new_tokens`). `variable=True`: the model
    grows or shrinks the gap itself (models with variable-length infilling), up to
    `max_new_tokens`; that needs a suffix to grow towards.
    """

    prefix: str = Field("", max_length=MAX_TEXT_CHARS)
    suffix: str = Field("", max_length=MAX_TEXT_CHARS)
    length: Int | None = Field(None, ge=1, le=MAX_TOKENS)
    variable: bool = False

    @model_validator(mode="after")
    def _check(self) -> InfillRequest:
        if not (self.prefix.strip() or self.suffix.strip()):
            raise ValueError("prefix and suffix must not both be empty")
        if self.variable and self.length is not None:
            raise ValueError("give either length or variable=true, not both")
        if self.variable and not self.suffix.strip():
            raise ValueError("variable-length infilling needs a suffix (the text after the gap)")
        return self


Request = GenerateRequest | InfillRequest


class LoadRequest(BaseModel):
    """Body of `POST /models/{id}/load`; device None means the user's preferred device."""

    model_config = ConfigDict(extra="forbid")

    device: Device | None = None
    dtype: DType | None = None


class ModelInfo(BaseModel):
    """What a client sees of a model: identity, cache state and, when loaded, where it runs."""

    id: str
    name: str
    family: str
    repo_id: str | None = None
    capabilities: list[str]
    parameters: int | None = None
    size_on_disk: int = 0
    cached: bool = False
    path: str | None = None
    loaded: bool = False
    device: str | None = None
    dtype: str | None = None
    fallback: str | None = None
    context_length: int | None = None  # most tokens (text + generation) one request may hold
