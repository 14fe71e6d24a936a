"""`DiffusionLLMService`: the one place a request becomes a stream of events.

Server handlers and the kernel's local backend are thin adapters over it: they
never validate, map errors or post-process on their own. A generation is
`status`, then `step`s, then exactly one `complete` or `error`; a caller that
cancels gets `GenerationCancelled` instead of an end event (nobody is waiting for one).

The request is validated and planned before the first event, so a refused request
is one `error` event and nothing else (HTTP answers it with a 400). The work runs on
the caller's own thread, as the caller iterates: the manager's iterator says where
the request stands (queued, loading, fell back to CPU) between its steps.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..cancel import CancelToken
from ..constants import DEFAULT_MODEL_ID, default_model_for
from ..errors import (
    DiffusionError,
    GenerationCancelled,
    GenerationError,
    GenerationTimeoutError,
)
from ..settings import SettingsStore, UserSettings
from .correlation import correlation_id
from .downloads import Downloads
from .events import CompleteEvent, ErrorEvent, Event, StatusEvent
from .frames import StepFrames
from .logs import get_logger
from .plan import Kind, Plan, make_plan
from .postprocess import clean
from .redaction import register_sensitive
from .schemas import GenerateRequest, InfillRequest, LoadRequest
from .validation import validate

if TYPE_CHECKING:
    from ..engine.decoder import GenerationStep
    from ..engine.runtime import DiffusionModelManager, Status, StatusCallback
    from .schemas import ModelInfo

log = get_logger(__name__)

T = TypeVar("T")
#: Called once a request is planned, before it runs; raises to refuse it (a rate limit).
Admission = Callable[[], None] | None

START_MESSAGES = {"generate": "Starting text generation...", "infill": "Starting infilling..."}


class _RequestToken(CancelToken):
    """The token the engine checks each step: cancelled by the caller, or expired by the deadline."""

    def __init__(self, caller: CancelToken | None, deadline: float, timeout: float) -> None:
        super().__init__()
        self._caller = caller
        self.deadline = deadline
        self.timeout = timeout

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    @property
    def cancelled(self) -> bool:
        return super().cancelled or self.expired or bool(self._caller and self._caller.cancelled)

    def raise_if_cancelled(self, step: int) -> None:
        if self.expired:
            raise GenerationTimeoutError(f"the request did not finish within its timeout of {self.timeout:g} s")
        super().raise_if_cancelled(step)
        if self._caller is not None:
            self._caller.raise_if_cancelled(step)


def _isolated(make: Callable[[], Generator[T, None, None]]) -> Generator[T, None, None]:
    """Iterate `make()` inside a private copy of the caller's context.

    The request's correlation id and sensitive texts are set in it without leaking into
    the caller's context, whichever thread resumes the iterator.
    """
    context = contextvars.copy_context()
    iterator = context.run(make)
    try:
        while True:
            try:
                item = context.run(next, iterator)
            except StopIteration:
                return
            yield item
    finally:
        context.run(iterator.close)


class DiffusionLLMService:
    """Requests in, events out, over one `DiffusionModelManager`.

    Args:
        manager: the model manager; a new one (created on first use) when None.
        settings_store: where user settings live; the default store when None.
        default_model: loaded on demand when a request arrives with no model loaded and
            names none (`constants.default_model_for`: the shipped default hands infill to `tiny`);
            None or "" makes such a request fail with `model_unavailable` (409).
    """

    def __init__(
        self,
        manager: DiffusionModelManager | None = None,
        settings_store: SettingsStore | None = None,
        default_model: str | None = DEFAULT_MODEL_ID,
    ) -> None:
        self._manager = manager
        self._downloads: Downloads | None = None
        self._manager_lock = threading.Lock()
        self.settings_store = settings_store or SettingsStore()
        self.default_model = default_model or None

    @property
    def manager(self) -> DiffusionModelManager:
        """The model manager, created on first use (its import is cheap, its models are not)."""
        with self._manager_lock:
            return self._manager_or_new()

    def _manager_or_new(self) -> DiffusionModelManager:
        if self._manager is None:
            from ..engine.runtime import DiffusionModelManager

            self._manager = DiffusionModelManager()
        return self._manager

    # -- models and settings ---------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        return self.manager.models()

    def current_model(self) -> ModelInfo | None:
        return self.manager.current()

    def load_model(
        self, model_id: str, request: LoadRequest | dict[str, Any] | None = None,
        on_status: StatusCallback | None = None,
    ) -> ModelInfo:
        """Load or switch to `model_id` on the requested device (default: the user's preferred one)."""
        body = validate(LoadRequest, request if request is not None else {})
        device = body.device or self.settings().preferred_device
        return self.manager.load(model_id, device=device, dtype=body.dtype, on_status=on_status)

    def unload_model(self) -> None:
        self.manager.unload()

    @property
    def downloads(self) -> Downloads:
        """Background downloads with progress, the same for the server and the kernel."""
        with self._manager_lock:
            if self._downloads is None:
                self._downloads = Downloads(self._manager_or_new())
            return self._downloads

    def settings(self) -> UserSettings:
        return self.settings_store.load()

    def update_settings(self, changes: dict[str, Any]) -> UserSettings:
        return self.settings_store.update(changes)

    # -- generation -----------------------------------------------------------------

    def generate_events(
        self, request: GenerateRequest | dict[str, Any], cancel: CancelToken | None = None, admit: Admission = None
    ) -> Iterator[Event]:
        """Events of one generation; failures end it as an `error` event, never as an exception.

        `admit` is called once the request is valid and planned, before any work: a rate limit
        charges only requests that could run (its `RateLimitedError` ends the run as a refusal).
        """
        return _isolated(lambda: self._as_events("generate", request, cancel, admit))

    def infill_events(
        self, request: InfillRequest | dict[str, Any], cancel: CancelToken | None = None, admit: Admission = None
    ) -> Iterator[Event]:
        """Events of one infilling; same terms as `generate_events`."""
        return _isolated(lambda: self._as_events("infill", request, cancel, admit))

    def generate(
        self, request: GenerateRequest | dict[str, Any], cancel: CancelToken | None = None, admit: Admission = None
    ) -> CompleteEvent:
        """Run a generation to the end (raises the `DiffusionError` an event stream would report)."""
        return self._complete("generate", request, cancel, admit)

    def infill(
        self, request: InfillRequest | dict[str, Any], cancel: CancelToken | None = None, admit: Admission = None
    ) -> CompleteEvent:
        """Run an infilling to the end (raises the `DiffusionError` an event stream would report)."""
        return self._complete("infill", request, cancel, admit)

    # -- internals ------------------------------------------------------------------

    def _complete(self, kind: Kind, request: Any, cancel: CancelToken | None, admit: Admission) -> CompleteEvent:
        for event in _isolated(lambda: self._events(kind, request, cancel, admit)):
            if isinstance(event, CompleteEvent):
                return event
        raise GenerationError("the generation ended without a result")

    def _as_events(
        self, kind: Kind, request: Any, cancel: CancelToken | None, admit: Admission
    ) -> Generator[Event, None, None]:
        try:
            yield from self._events(kind, request, cancel, admit)
        except DiffusionError as error:
            yield ErrorEvent.from_error(error)

    def plan(self, kind: Kind, request: GenerateRequest | InfillRequest | dict[str, Any]) -> Plan:
        """Validate `request` and resolve it against the model it will run on (raises `ValidationError`)."""
        if isinstance(request, dict):
            register_sensitive(str(request.get(key, "")) for key in ("prompt", "prefix", "suffix"))
        body: GenerateRequest | InfillRequest
        if kind == "generate":
            body = validate(GenerateRequest, request)
        else:
            body = validate(InfillRequest, request)
        register_sensitive([body.prompt] if isinstance(body, GenerateRequest) else [body.prefix, body.suffix])
        current = self.manager.current()
        model = body.model or default_model_for(kind, current.id if current is not None else None, self.default_model)
        if model is None:
            from ..errors import NoModelLoadedError

            raise NoModelLoadedError("no model is loaded and no default model is configured: load one first")
        return make_plan(body, self.manager.spec(model), self.settings())

    def _events(
        self, kind: Kind, request: Any, cancel: CancelToken | None, admit: Admission
    ) -> Generator[Event, None, None]:
        """The generation proper; raises DiffusionError / GenerationCancelled (in a private context)."""
        from ..engine.runtime import Status

        started = time.monotonic()
        if correlation_id.get() == "-":
            correlation_id.set(uuid.uuid4().hex)
        plan = self.plan(kind, request)
        if admit is not None:
            admit()
        token = _RequestToken(cancel, started + plan.timeout, plan.timeout)
        log.info("%s started", kind, extra={"fields": {"timeout_s": plan.timeout, "model": plan.model}})
        frames = StepFrames()
        last: GenerationStep | None = None
        started_said = False
        try:
            for item in self._steps(plan, token):
                if not frames.history and last is None and not started_said:
                    # said once the model has accepted the request (a refused canvas raises before)
                    started_said = True
                    yield StatusEvent(message=START_MESSAGES[kind], model=plan.model)
                if isinstance(item, Status):
                    if item.restart:
                        frames.restart()
                        last = None
                    yield StatusEvent(message=item.message, restart=item.restart)
                else:
                    last = item
                    yield frames.frame(item)
            closing = frames.closing_frame()
            if closing is not None:
                yield closing
            if last is None:
                raise GenerationError("the model produced no steps")
            yield self._completion(plan, frames, last, time.monotonic() - started)
        except GenerationCancelled as cancelled:
            log.info("%s cancelled at step %d", kind, cancelled.step)
            raise
        except DiffusionError as error:
            log.warning("%s failed: %s", kind, error.error_type,
                        extra={"fields": {"error_type": error.error_type, "seconds": round(time.monotonic() - started, 3)}})
            raise
        except Exception as error:  # the one place an unexpected failure becomes a category
            log.exception("%s failed unexpectedly (%s)", kind, type(error).__name__)
            raise GenerationError(
                f"the generation failed unexpectedly; the server log has the details (correlation id {correlation_id.get()})"
            ) from None

    def _steps(self, plan: Plan, token: _RequestToken) -> Generator[Status | GenerationStep, None, None]:
        """The manager's statuses and steps, on the plan's model."""
        body = plan.request
        run = (
            self.manager.generate(body.prompt, plan.options, token, model=plan.model, device=plan.device)
            if isinstance(body, GenerateRequest)
            else self.manager.infill(body.prefix, body.suffix, plan.options, cancel=token, variable=body.variable,
                                     model=plan.model, device=plan.device)
        )
        try:
            yield from run
        finally:
            run.close()

    def _completion(self, plan: Plan, frames: StepFrames, last: GenerationStep, seconds: float) -> CompleteEvent:
        info = self.manager.current()
        model_used = info.id if info else "unknown"
        event = CompleteEvent(
            text=clean(last.text, trim=plan.auto_trim, punctuation=plan.fix_punctuation),
            raw_text=last.text,
            history=frames.history,
            generation_time=round(seconds, 4),
            model_used=model_used,
            device=(info.device or "unknown") if info else "unknown",
            tokens=last.text_tokens,
            steps=last.step,
            options=plan.effective_options(model_used),
            block_origin=last.block_origin,
        )
        log.info("%s finished", plan.kind, extra={"fields": {
            "model": event.model_used, "device": event.device, "steps": event.steps,
            "tokens": event.tokens, "seconds": event.generation_time,
        }})
        return event
