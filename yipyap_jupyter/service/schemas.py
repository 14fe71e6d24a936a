"""Request bodies, shared by the HTTP routes, the magics and the panels.

Unknown fields are rejected and ranges enforced here, once. A field left out (None)
takes the user's settings, then the loaded model's family defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

#: Longest prompt / prefix / suffix accepted, in characters.
MAX_TEXT_CHARS = 200_000

Remasking = Literal["low_confidence", "random", "origin", "maskgit_plus", "topk_margin", "entropy"]


class SamplingFields(BaseModel):
    """Sampling knobs common to generation and infilling; None means "the default"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_new_tokens: int | None = Field(None, ge=1, le=1024)
    steps: int | None = Field(None, ge=1, le=1024)
    block_length: int | None = Field(None, ge=1, le=1024)
    temperature: float | None = Field(None, ge=0.0, le=10.0)
    remasking: Remasking | None = Field(None, validation_alias=AliasChoices("remasking", "alg"))
    cfg_scale: float | None = Field(None, ge=0.0, le=20.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1)
    alg_temp: float | None = Field(None, ge=0.0, le=10.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    threshold: float | None = Field(
        None, gt=0.0, le=1.0,
        description="parallel decoding: commit every masked position at least this confident each step (LLaDA models)",
    )
    chat: bool | None = None
    auto_trim: bool | None = None
    fix_punctuation: bool | None = None
    timeout: float | None = Field(None, gt=0.0, le=3600.0)
    model: str | None = Field(None, min_length=1, max_length=4096)


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
    `max_new_tokens`.
    """

    prefix: str = Field("", max_length=MAX_TEXT_CHARS)
    suffix: str = Field("", max_length=MAX_TEXT_CHARS)
    length: int | None = Field(None, ge=1, le=1024)
    variable: bool = False

    @model_validator(mode="after")
    def _check(self) -> InfillRequest:
        if not (self.prefix.strip() or self.suffix.strip()):
            raise ValueError("prefix and suffix must not both be empty")
        if self.variable and self.length is not None:
            raise ValueError("give either length or variable=true, not both")
        return self


class LoadRequest(BaseModel):
    """Body of `POST /models/{id}/load`; device None means the user's preferred device."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cuda", "mps", "cpu"] | None = None
    dtype: Literal["float32", "float16", "bfloat16"] | None = None
