"""One plan per request: the model's defaults, then the user's settings, then the request.

`make_plan` runs once, before anything streams, and freezes everything the run needs:
which model, which sampler, every sampler option (through the engine's `resolve`, so
an option that does not apply to the model is refused by name), the text clean-ups
and the timeout. The complete event reports `Plan.effective_options`, so a user sees
what ran and can rerun it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..engine.families import all_options
from ..engine.options import Job, Sampler, SamplingOptions, resolve, sampler_for
from .schemas import GenerateRequest, InfillRequest

if TYPE_CHECKING:
    from ..engine.specs import ModelSpec
    from ..settings import UserSettings

Kind = Literal["generate", "infill"]

#: Request fields that are sampler options (the rest steer the service): every family's, and `chat`.
OPTION_FIELDS = (*(option.name for option in all_options()), "chat")


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, decided once."""

    request: GenerateRequest | InfillRequest
    model: str
    job: Job
    sampler: Sampler
    options: SamplingOptions
    auto_trim: bool
    fix_punctuation: bool
    timeout: float
    device: str

    @property
    def kind(self) -> Kind:
        return "generate" if isinstance(self.request, GenerateRequest) else "infill"

    def effective_options(self, model_id: str) -> dict[str, Any]:
        """The options that ran, with the model that ran them."""
        return {"model": model_id, **self.options.effective(self.sampler)}


def make_plan(request: GenerateRequest | InfillRequest, spec: ModelSpec, settings: UserSettings) -> Plan:
    """Resolve `request` for the model of `spec` over the user's `settings` (the plan names it by `spec.id`).

    Raises:
        ValidationError: an option that does not apply to the model, or a schedule that does not fit.
    """
    given = {name: getattr(request, name) for name in OPTION_FIELDS}
    if given["max_new_tokens"] is None:
        given["max_new_tokens"] = settings.max_new_tokens
    length = None
    job: Job = "generate"
    if isinstance(request, InfillRequest):
        job = "variable_infill" if request.variable else "infill"
        length = request.length
    options = resolve(SamplingOptions(**given), spec, job, length)
    punctuation = settings.fix_punctuation if request.fix_punctuation is None else request.fix_punctuation
    return Plan(
        request=request,
        model=spec.id,
        job=job,
        sampler=sampler_for(spec, job),
        options=options,
        auto_trim=(settings.auto_trim if request.auto_trim is None else request.auto_trim) and job == "generate",
        fix_punctuation=punctuation and not spec.code,
        timeout=request.timeout or settings.request_timeout,
        device=settings.preferred_device,
    )
