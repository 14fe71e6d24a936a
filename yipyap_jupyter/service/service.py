"""`DiffusionLLMService`: the one place a request becomes a stream of events.

Server handlers and the kernel's local backend are thin adapters over it: they
never validate, map errors or post-process on their own. A generation is
`status`, then `step`s, then exactly one `complete` or `error`; a caller that
cancels gets `GenerationCancelled` instead of an end event (nobody is waiting for one).

The model work runs on a helper thread that feeds a queue, so queue-position and
loading status frames reach the caller while the request waits for its turn, and
the request's timeout holds even while a model is loading.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..cancel import CancelToken
from ..constants import DEFAULT_MODEL_ID
from ..errors import (
    DiffusionError,
    GenerationCancelled,
    GenerationError,
    GenerationTimeoutError,
    error_body,
)
from ..settings import SettingsStore, UserSettings
from .correlation import correlation_id, in_current_context
from .events import CompleteEvent, ErrorEvent, Event, StatusEvent
from .frames import StepFrames
from .logs import get_logger
from .postprocess import clean
from .redaction import register_sensitive
from .schemas import GenerateRequest, InfillRequest, LoadRequest
from .validation import validate

if TYPE_CHECKING:
    from ..engine.manager import DiffusionModelManager
    from ..engine.model import GenerationStep, SamplingOptions
    from ..engine.registry import ModelInfo

log = get_logger(__name__)

Kind = Literal["generate", "infill"]
T = TypeVar("T")

#: Fields of a request that become `SamplingOptions` (the rest steer the service).
SAMPLING_FIELDS = ("max_new_tokens", "steps", "block_length", "temperature", "remasking", "cfg_scale",
                   "top_p", "top_k", "alg_temp", "seed", "chat", "threshold")
#: How often the caller's cancel token and the deadline are checked while the engine is busy.
POLL_SECONDS = 0.25
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


@dataclass(frozen=True)
class _Progress:
    """One engine step with the model info current while it ran (it changes on a CPU fallback)."""

    step: GenerationStep
    info: ModelInfo | None


_DONE = object()


def _isolated(make: Callable[[], Iterator[T]]) -> Iterator[T]:
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
            names none; None or "" makes such a request fail with `model_unavailable` (409).
    """

    def __init__(
        self,
        manager: DiffusionModelManager | None = None,
        settings_store: SettingsStore | None = None,
        default_model: str | None = DEFAULT_MODEL_ID,
    ) -> None:
        self._manager = manager
        self._manager_lock = threading.Lock()
        self.settings_store = settings_store or SettingsStore()
        self.default_model = default_model or None

    @property
    def manager(self) -> DiffusionModelManager:
        """The model manager, created on first use (its import is cheap, its models are not)."""
        with self._manager_lock:
            if self._manager is None:
                from ..engine.manager import DiffusionModelManager

                self._manager = DiffusionModelManager()
            return self._manager

    # -- models and settings ---------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        return self.manager.models()

    def current_model(self) -> ModelInfo | None:
        return self.manager.current()

    def load_model(
        self, model_id: str, request: LoadRequest | dict[str, Any] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> ModelInfo:
        """Load or switch to `model_id` on the requested device (default: the user's preferred one)."""
        body = validate(LoadRequest, request if request is not None else {})
        device = body.device or self.settings().preferred_device
        return self.manager.load(model_id, device=device, dtype=body.dtype, on_status=on_status)

    def unload_model(self) -> None:
        self.manager.unload()

    def settings(self) -> UserSettings:
        return self.settings_store.load()

    def update_settings(self, changes: dict[str, Any]) -> UserSettings:
        return self.settings_store.update(changes)

    # -- generation -----------------------------------------------------------------

    def generate_events(
        self, request: GenerateRequest | dict[str, Any], cancel: CancelToken | None = None
    ) -> Iterator[Event]:
        """Events of one generation; failures end it as an `error` event, never as an exception."""
        return _isolated(lambda: self._as_events("generate", request, cancel))

    def infill_events(self, request: InfillRequest | dict[str, Any], cancel: CancelToken | None = None) -> Iterator[Event]:
        """Events of one infilling; same terms as `generate_events`."""
        return _isolated(lambda: self._as_events("infill", request, cancel))

    def generate(self, request: GenerateRequest | dict[str, Any], cancel: CancelToken | None = None) -> CompleteEvent:
        """Run a generation to the end (raises the `DiffusionError` an event stream would report)."""
        return self._complete("generate", request, cancel)

    def infill(self, request: InfillRequest | dict[str, Any], cancel: CancelToken | None = None) -> CompleteEvent:
        """Run an infilling to the end (raises the `DiffusionError` an event stream would report)."""
        return self._complete("infill", request, cancel)

    # -- internals ------------------------------------------------------------------

    def _complete(self, kind: Kind, request: Any, cancel: CancelToken | None) -> CompleteEvent:
        for event in _isolated(lambda: self._events(kind, request, cancel)):
            if isinstance(event, CompleteEvent):
                return event
        raise GenerationError("the generation ended without a result")

    def _as_events(self, kind: Kind, request: Any, cancel: CancelToken | None) -> Iterator[Event]:
        try:
            yield from self._events(kind, request, cancel)
        except DiffusionError as error:
            yield ErrorEvent(**error_body(error))

    def _events(self, kind: Kind, request: Any, cancel: CancelToken | None) -> Iterator[Event]:
        """The generation proper; raises DiffusionError / GenerationCancelled (in a private context)."""
        started = time.monotonic()
        if correlation_id.get() == "-":
            correlation_id.set(uuid.uuid4().hex)
        if isinstance(request, dict):
            register_sensitive(str(request.get(key, "")) for key in ("prompt", "prefix", "suffix"))
        yield StatusEvent(message=START_MESSAGES[kind])
        body = validate(GenerateRequest if kind == "generate" else InfillRequest, request)
        register_sensitive([body.prompt] if isinstance(body, GenerateRequest) else [body.prefix, body.suffix])
        settings = self.settings()
        timeout = body.timeout or settings.request_timeout
        token = _RequestToken(cancel, started + timeout, timeout)
        log.info("%s started", kind, extra={"fields": {"timeout_s": timeout, "model": body.model}})
        frames = StepFrames()
        progress: _Progress | None = None
        try:
            for item in self._pumped(kind, body, settings, token):
                if isinstance(item, StatusEvent):
                    yield item
                else:
                    progress = item
                    yield frames.frame(item.step)
            closing = frames.closing_frame()
            if closing is not None:
                yield closing
            if progress is None:
                raise GenerationError("the model produced no steps")
            yield self._completion(kind, body, settings, frames, progress, time.monotonic() - started)
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

    def _pumped(
        self, kind: Kind, body: GenerateRequest | InfillRequest, settings: UserSettings, token: _RequestToken
    ) -> Iterator[StatusEvent | _Progress]:
        """Run the engine on a helper thread; relay its status messages and steps as they come."""
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def say(message: str) -> None:
            items.put(StatusEvent(message=message))

        def pump() -> None:
            try:
                self._ensure_model(body.model, settings, say)
                manager = self.manager
                for step in self._steps(kind, body, token, say):
                    items.put(_Progress(step, manager.current()))
                items.put(_DONE)
            except BaseException as error:  # noqa: BLE001 - handed to the consumer thread, which re-raises it
                items.put(error)

        worker = threading.Thread(target=in_current_context(pump), name="yipyap-generation", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    item = items.get(timeout=min(POLL_SECONDS, max(0.0, token.deadline - time.monotonic())))
                except queue.Empty:
                    token.raise_if_cancelled(0)  # the deadline or the caller, while the engine is busy
                    continue
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            token.cancel()
            worker.join()

    def _ensure_model(self, wanted: str | None, settings: UserSettings, say: Callable[[str], None]) -> None:
        """Load the request's model when it differs from the loaded one, or the default when none is loaded."""
        current = self.manager.current()
        if wanted is not None:
            if current is not None and wanted in (current.id, current.repo_id, current.path):
                return
        elif current is None and self.default_model is not None:
            wanted = self.default_model
        else:
            return
        self.manager.load(wanted, device=settings.preferred_device, on_status=say)

    def _steps(
        self, kind: Kind, body: GenerateRequest | InfillRequest, token: _RequestToken, say: Callable[[str], None]
    ) -> Iterator[GenerationStep]:
        options = self._options(body)
        if isinstance(body, GenerateRequest):
            return self.manager.generate(body.prompt, options, cancel=token, on_status=say)  # type: ignore[arg-type]
        length = None if body.variable else (body.length or options.max_new_tokens)
        return self.manager.infill(body.prefix, body.suffix, options, length=length, cancel=token, on_status=say)  # type: ignore[arg-type]

    def _options(self, body: GenerateRequest | InfillRequest) -> SamplingOptions:
        """Request fields over the user's settings; what is still None takes the model's family default."""
        from ..engine.model import SamplingOptions

        fields = {name: getattr(body, name) for name in SAMPLING_FIELDS}
        fields["remasking"] = body.remasking or body.alg
        if fields["max_new_tokens"] is None:
            fields["max_new_tokens"] = self.settings().max_new_tokens
        if fields["cfg_scale"] is None:
            fields["cfg_scale"] = 0.0
        return SamplingOptions(**fields)

    def _completion(
        self, kind: Kind, body: GenerateRequest | InfillRequest, settings: UserSettings,
        frames: StepFrames, progress: _Progress, seconds: float,
    ) -> CompleteEvent:
        last = progress.step
        trim = settings.auto_trim if body.auto_trim is None else body.auto_trim
        punctuation = settings.fix_punctuation if body.fix_punctuation is None else body.fix_punctuation
        info = progress.info
        event = CompleteEvent(
            text=clean(last.text, trim=trim and kind == "generate", punctuation=punctuation, finished=last.ended),
            raw_text=last.text,
            history=frames.history,
            generation_time=round(seconds, 4),
            model_used=info.id if info else "unknown",
            device=(info.device or "unknown") if info else "unknown",
            tokens=last.text_tokens,
            steps=last.step,
        )
        log.info("%s finished", kind, extra={"fields": {
            "model": event.model_used, "device": event.device, "steps": event.steps,
            "tokens": event.tokens, "seconds": event.generation_time,
        }})
        return event
