"""The runtime: one resident diffusion model, shared by every request of a process.

Its rooms, one job each:

- `queue`: the request queue; loads and generations take turns in arrival order (`Turn`).
- `residency`: the one owner of the (model, device, info) triple: load, swap, out-of-memory fallback.
- `scheduler`: seats each generation in the batch ahead of it, or gives it a turn of its own.
- `shared_batch` / `batch`: the running batch of the resident model, and its packed passes.
- `engine_thread`: the one thread that runs every load, pass and sampler step.
- `status`: `Status`, the typed messages a request receives besides its steps.

`DiffusionModelManager` is the door the service uses. Torch is imported only when a
model is loaded, so importing this package is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from ...constants import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS
from ...errors import ValidationError
from ..model_info import ModelInfo
from ..registry import ModelRegistry
from .queue import RequestQueue
from .residency import Residency
from .scheduler import Scheduler
from .status import Status, StatusCallback, quiet

if TYPE_CHECKING:
    import torch

    from ...cancel import CancelToken
    from ..model import DiffusionModel, GenerationStep, SamplingOptions
    from ..specs import ModelSpec

__all__ = ["DiffusionModelManager", "Status", "StatusCallback"]

logger = logging.getLogger(__name__)


class DiffusionModelManager:
    """Holds at most one `DiffusionModel` and serialises everything that uses or replaces it."""

    def __init__(
        self, registry: ModelRegistry | None = None, *, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
    ) -> None:
        if max_batch_size < 1 or max_batch_tokens < 1:
            raise ValidationError("max_batch_size and max_batch_tokens must be at least 1")
        self.registry = registry or ModelRegistry()
        self._queue = RequestQueue()
        self.residency = Residency(self.registry)
        self.scheduler = Scheduler(self._queue, self.residency, max_batch_size=max_batch_size,
                                   max_batch_tokens=max_batch_tokens)

    # -- state --------------------------------------------------------------------

    @property
    def loaded_model(self) -> DiffusionModel | None:
        """The resident model itself (None when nothing is loaded); requests go through `generate`/`infill`."""
        resident = self.residency.resident()
        return resident.model if resident is not None else None

    def current(self) -> ModelInfo | None:
        """The loaded model's info, or None."""
        return self.residency.current()

    def models(self) -> list[ModelInfo]:
        """Every known model's cache state, with the loaded one (known or local) marked."""
        current = self.current()
        infos = [self.registry.info(spec) for spec in self.registry.specs()]
        if current is None:
            return infos
        merged = [current if info.id == current.id else info for info in infos]
        return merged if any(info.id == current.id for info in infos) else merged + [current]

    def spec(self, model_id_or_path: str) -> ModelSpec:
        """The spec of a known id or local directory (cheap: no weights are read)."""
        return self.registry.resolve(model_id_or_path)[0]

    # -- loading ------------------------------------------------------------------

    def load(
        self,
        model_id_or_path: str,
        device: str = "auto",
        dtype: str | torch.dtype | None = None,
        on_status: StatusCallback | None = None,
    ) -> ModelInfo:
        """Load (or switch to) a model; the previous one stays in service until the new one is ready.

        Raises:
            ModelUnavailableError: unknown id or weights not on disk (nothing is downloaded).
            ModelLoadingError: corrupt or incompatible weights.
            ValidationError: a device or dtype this machine cannot provide.
        """
        say = on_status or quiet
        wanted = self.residency.wanted(model_id_or_path, device, dtype)
        with self._queue.turn(say):
            current = self.current()
            if current is not None and wanted.matches(current, exact=True):
                say(Status(f"{wanted.spec.id} is already loaded on {wanted.device}"))
                return current
            say(Status(f"loading {wanted.spec.id} on {wanted.device}"))
            return self.residency.load(wanted, say)

    def unload(self) -> None:
        """Drop the model and give its host and accelerator memory back."""
        with self._queue.turn():
            previous = self.residency.unload()
        if previous is not None:
            logger.info("unloaded %s", previous.id)

    def download(self, model_id: str, progress: Callable[[int, int], None] | None = None) -> ModelInfo:
        """Fetch a known model into the Hugging Face cache (explicit action; see `ModelRegistry.download`)."""
        logger.info("downloading %s", model_id)
        path = self.registry.download(model_id, progress)
        spec, _ = self.registry.resolve(model_id)
        return self.registry.info(spec, path)

    # -- generation ---------------------------------------------------------------

    def generate(
        self,
        prompt: str,
        options: SamplingOptions,
        cancel: CancelToken | None = None,
        *,
        model: str | None = None,
        device: str = "auto",
    ) -> Generator[Status | GenerationStep, None, None]:
        """Statuses and steps of a generation, holding a turn (or a seat in the batch ahead) until exhausted or closed.

        With `model`, that model is loaded first (on `device`) in the same turn unless it is the
        resident one, so the request runs on the model it names; without, on the loaded model.

        Raises (when iterated): NoModelLoadedError, ModelUnavailableError, ModelLoadingError,
        ValidationError, GenerationError, GenerationCancelled.
        """
        return self.scheduler.run(lambda m: m.prepare_generate(prompt, options), None, model, device, cancel)

    def infill(
        self,
        prefix: str,
        suffix: str,
        options: SamplingOptions,
        length: int | None = None,
        cancel: CancelToken | None = None,
        *,
        variable: bool = False,
        model: str | None = None,
        device: str = "auto",
    ) -> Generator[Status | GenerationStep, None, None]:
        """Statuses and steps of an infilling (fixed `length`, or `variable`); same terms as `generate`."""
        if variable:
            alone = lambda m: m.infill(prefix, suffix, options, length=length, cancel=cancel, variable=True)
            return self.scheduler.run(None, alone, model, device, cancel)
        return self.scheduler.run(lambda m: m.prepare_infill(prefix, suffix, options, length), None, model, device,
                                  cancel)
