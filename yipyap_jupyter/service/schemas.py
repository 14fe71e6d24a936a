"""The wire types: the requests (shared by HTTP, the magics, the panels, the CLI and the Python
client) and the model info every view shows.

This is the one module that validates a request: views build a `GenerateRequest` or
`InfillRequest` from what the user set (leaving the rest None) and never check values
themselves; the service checks the family-specific rules against the loaded model
once, in its plan (`service/plan.py`). Unknown fields, booleans for numbers, inf and
NaN are rejected here.

The sampler options are not written here: each is declared once as an `Option` in the
folder of the family whose sampler reads it (`engine/families/`), and `SamplingFields` has
one field per option of every family (its type, range and help). Which option applies to
which model is the plan's to check: an option of another family is refused, naming it.

`temperature` is 0 (greedy) or at least `MIN_TEMPERATURE`: smaller positive values
overflow the Gumbel / softmax arithmetic, so they are refused rather than clamped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model, field_validator, model_validator

from ..engine.families import all_options
from ..engine.model_info import ModelInfo as ModelInfo  # a wire type too: the engine's, re-exported
from ..engine.options import MAX_TOKENS
from ..engine.options import Option as Option  # views read the options' declarations from here, not the engine

#: Longest prompt / prefix / suffix accepted, in characters; checked before anything is tokenised.
MAX_TEXT_CHARS = 32_768
#: Request fields that would carry images: refused, saying that prompts are text only.
IMAGE_FIELDS = ("image", "images", "pixel_values", "image_url")
#: Smallest positive sampling temperature (0 means greedy).
MIN_TEMPERATURE = 0.01

Device = Literal["auto", "cuda", "mps", "cpu"]
DType = Literal["float32", "float16", "bfloat16"]

#: Every sampler option a request may carry, once each: what views build their fields, knobs and flags from.
SAMPLER_OPTIONS: tuple[Option, ...] = all_options()

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]


class _RequestFields(BaseModel):
    """What every request has besides the sampler options; None means "not set" (a default applies)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    model: str | None = Field(None, min_length=1, max_length=4096, description="model id or local checkpoint directory")
    chat: bool | None = Field(None, description="wrap the prompt in the model's chat template (chat models)")
    auto_trim: bool | None = None
    fix_punctuation: bool | None = None
    timeout: Float | None = Field(None, gt=0.0, le=3600.0)

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in IMAGE_FIELDS):
            raise ValueError("prompts are text only: this service does not take images")
        return data


def _field(option: Option) -> tuple[Any, Any]:
    """The pydantic field of an option: its strict type (or its choices), its range and help, None by default."""
    kind: Any = {int: Int, float: Float, bool: bool, str: str}[option.type]
    if option.choices:
        kind = Literal[option.choices]
    description = option.help if option.default == "the model's default" else f"{option.help} (default: {option.default})"
    return kind | None, Field(None, ge=option.ge, gt=option.gt, le=option.le, description=description)


if TYPE_CHECKING:
    _OptionFields = _RequestFields  # the generated fields are read by name (`service.plan.OPTION_FIELDS`)
else:
    _OptionFields = create_model("_OptionFields", __base__=_RequestFields,
                                 **{option.name: _field(option) for option in SAMPLER_OPTIONS})


class SamplingFields(_OptionFields):
    """The sampler options of every family and the service's own knobs; None means "not set"."""

    @field_validator("temperature", check_fields=False)
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


class LoadRequest(BaseModel):
    """Body of `POST /models/{id}/load`; device None means the user's preferred device."""

    model_config = ConfigDict(extra="forbid")

    device: Device | None = None
    dtype: DType | None = None
