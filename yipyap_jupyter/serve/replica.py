"""A model replica: one `DiffusionLLMService` per model it holds, and the events of the requests it is sent.

Serve's model multiplexing keys the services by model id: the ingress tags each request
with the model it runs on, Serve prefers a replica that already holds that model, and
`service_for` makes one on the replica that got it (the service loads the model on the
request's first step, saying so in a status event, as it does in Jupyter). A replica
holds `models_per_replica` models at most; Serve frees the least recently used one
through `_HeldService.__del__`. A generation's events come back in the batches the
extension's SSE writer would write (`event_batches`), so one Ray message carries all
the steps of a frame interval, and an empty batch is a keep-alive.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from functools import partial
from typing import Any, TypeVar

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle

from ..cancel import CancelToken
from ..errors import DiffusionError
from ..server.sse import CANCELLED, event_batches
from ..service.correlation import correlation_id, in_current_context
from ..service.events import ErrorEvent
from ..service.logs import get_logger
from ..service.plan import Kind
from ..service.schemas import ModelInfo
from ..service.service import DiffusionLLMService
from ..settings import SettingsStore
from .config import ServeConfig, open_log_files

log = get_logger(__name__)
T = TypeVar("T")


def replica_name() -> str:
    """`<deployment>#<replica id>`: what the `X-Replica` header says and the board is keyed by."""
    context = serve.get_replica_context()
    return f"{context.deployment}#{context.replica_id.unique_id}"


class _HeldService:
    """A service for one model as the multiplex cache holds it; Serve calls `__del__` when it evicts it."""

    def __init__(self, service: DiffusionLLMService, release: Callable[[], None]) -> None:
        self.service = service
        self._release: Callable[[], None] | None = release

    def __del__(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


class DiffusionReplica:
    """Holds services keyed by model id; answers loads, unloads and generations for the ingress.

    A new replica (at start, or one Serve starts in place of a dead one) loads the default
    model before it takes requests, and is on the board from then on.
    """

    async def __init__(self, config: ServeConfig, board: DeploymentHandle) -> None:  # type: ignore[misc]
        open_log_files(config)
        if config.gil_switch_interval > 0:
            sys.setswitchinterval(config.gil_switch_interval)  # this process is the replica's own
        self.config = config
        self.board = board
        self.name = replica_name()
        self.node = ray.util.get_node_ip_address()
        self.executor = ThreadPoolExecutor(max_workers=max(1, config.worker_threads), thread_name_prefix="yipyap")
        self.services: dict[str, DiffusionLLMService] = {}
        self._reported: dict[str, Any] | None = None
        self._reporting: set[asyncio.Future[None]] = set()
        self._sequence = 0

        async def load(model_id: str) -> _HeldService:
            return self._new_service(model_id)

        self.service_for = serve.multiplexed(max_num_models_per_replica=config.models_per_replica)(load)
        name, answer = await self.load(config.default_model, {}, correlation_id.get())
        if isinstance(answer, ErrorEvent):  # the replica still serves: each request naming the model says why
            log.error("%s could not load %s: %s", name, config.default_model, answer.message)
        await self.report()

    def _new_service(self, model_id: str) -> _HeldService:
        from ..engine.runtime import DiffusionModelManager

        manager = DiffusionModelManager(max_batch_size=self.config.max_batch_size,
                                        max_batch_tokens=self.config.max_batch_tokens)
        service = DiffusionLLMService(manager, SettingsStore(self.config.settings_path), default_model=model_id)
        self.services[model_id] = service
        log.info("holding %s", model_id)
        return _HeldService(service, partial(self._release, model_id, service))

    def _release(self, model_id: str, service: DiffusionLLMService) -> None:
        """Free an evicted model (after the generation in flight on it, which the manager waits for)."""
        if self.services.get(model_id) is service:
            del self.services[model_id]
        try:
            service.unload_model()
        except RuntimeError:  # the process is exiting: its memory goes with it
            return
        log.info("released %s", model_id)

    async def _blocking(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, in_current_context(function), *args)

    # -- what the ingress calls ------------------------------------------------------

    async def events(self, kind: Kind, body: Any, correlation: str) -> AsyncIterator[str | list[Any]]:
        """This replica's name, then the request's events in batches (an empty batch: nothing to say yet)."""
        yield self.name
        correlation_id.set(correlation)
        held = await self.service_for(serve.get_multiplexed_model_id())
        run = held.service.generate_events if kind == "generate" else held.service.infill_events
        batches = event_batches(partial(run, body), CancelToken(), self.executor, self.config.keepalive_seconds,
                                self.config.frame_interval)
        async with aclosing(batches):
            async for batch in batches:
                items = [item for item in batch if item is not CANCELLED]
                if items or not batch:
                    yield items
        self._reporting.add(asyncio.ensure_future(self.report(always=False)))  # the stream ends without waiting
        self._reporting = {task for task in self._reporting if not task.done()}

    async def load(self, model_id: str, body: Any, correlation: str) -> tuple[str, ModelInfo | ErrorEvent]:
        """Hold `model_id` and load it as `body` asks (device, dtype): the model's info, or why not."""
        correlation_id.set(correlation)
        held = await self.service_for(model_id)
        try:
            info = await self._blocking(held.service.load_model, model_id, body)
        except DiffusionError as error:
            return self.name, ErrorEvent.from_error(error)
        await self.report(always=False)
        return self.name, info

    async def unload(self, correlation: str) -> tuple[str, list[str]]:
        """Free every model this replica holds (each service stays, empty, for the next request naming it)."""
        correlation_id.set(correlation)
        unloaded = []
        for model_id, service in list(self.services.items()):
            if service.current_model() is not None:
                await self._blocking(service.unload_model)
                unloaded.append(model_id)
        await self.report(always=False)
        return self.name, unloaded

    def state(self) -> dict[str, Any]:
        """What the board shows of this replica: where it runs and each model it holds (loaded or not)."""
        models = []
        for model_id, service in sorted(self.services.items()):
            info = service.current_model()
            models.append({"model": model_id, **(info.model_dump() if info is not None else {"loaded": False})})
        return {"replica": self.name, "node": self.node, "pid": os.getpid(), "models": models}

    async def report(self, always: bool = True) -> None:
        """Tell the board this replica's state (a heartbeat when `always`, else only a change).

        Each report is numbered when its state is read, so one that arrives late cannot replace a newer one.
        """
        state = self.state()
        if not always and state == self._reported:
            return
        self._reported = state
        self._sequence += 1
        state = {**state, "sequence": self._sequence}
        try:
            await asyncio.wait_for(self.board.report.remote(self.name, state), timeout=self.config.heartbeat_seconds)
        except (ray.exceptions.RayError, asyncio.TimeoutError) as error:  # the board restarts: the next beat tells it
            log.warning("could not report to the board (%s)", type(error).__name__)

    async def check_health(self) -> None:
        """Serve's periodic health check, which is also this replica's heartbeat on the board."""
        await self.report()
