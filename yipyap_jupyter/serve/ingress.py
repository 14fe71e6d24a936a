"""The HTTP front of the Serve application: `/api/diffusion`, as the Jupyter extension serves it.

The same routes, JSON bodies, SSE frames, error objects and statuses (through
`server/bodies.py` and `errors.wire_error`), OpenAPI document and per-client rate limits, so
the extension's proxy mode and `DiffusionClient`'s server backend talk to it unchanged.
The ingress holds a service of its own that never loads a model: it validates and plans
each request (a refusal is answered here and touches no replica), lists the known models
and keeps the settings and downloads. A generation goes to a model replica tagged with the
model its plan runs on (Serve's multiplexing), and its event batches come back as SSE
frames as they arrive. A replica that dies mid-stream ends the stream with one retryable
`network` error frame. Load and unload are sent until every live replica on the board has
done them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import ray
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.exceptions import HTTPException

from ..errors import DiffusionError, NetworkError, ValidationError, error_body, error_for_status, wire_error
from ..server.bodies import parse_body
from ..server.metrics import MetricsStore
from ..server.openapi import openapi_document
from ..server.ratelimit import RateLimiter
from ..server.sse import CONTENT_TYPE, KEEPALIVE_FRAME, frame
from ..service.correlation import correlation_id
from ..service.events import CompleteEvent, ErrorEvent
from ..service.logs import get_logger
from ..service.plan import Kind
from ..service.schemas import LoadRequest, ModelInfo
from ..service.service import DiffusionLLMService
from ..service.validation import validate
from ..settings import SettingsStore
from .config import ServeConfig, data_dir, open_log_files
from .manners import REPLICA_HEADER, Manners, RequestRecord
from .replica import replica_name

log = get_logger(__name__)

API = "/api/diffusion"
#: Rounds of load (or unload) calls at most, each round twice as many calls as there are live replicas.
BROADCAST_ROUNDS = 6
#: What a request in flight on a replica raises when that replica dies or cannot be reached.
REPLICA_FAILURES = (ray.exceptions.RayError, RayServeException)


def _record(request: Request, endpoint: str, stream: bool = False) -> RequestRecord:
    """Name the request's route in its metrics row (the record `Manners` put in the scope)."""
    record: RequestRecord = request.state.record
    record.endpoint, record.stream = endpoint, stream
    return record


def error_response(error: BaseException, replica: str | None = None) -> JSONResponse:
    """The extension's answer to `error`: its status, the error object, `Retry-After` when rate limited."""
    answer = wire_error(error)
    headers = {REPLICA_HEADER: replica, **answer.headers} if replica else answer.headers
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


async def _diffusion_error(request: Request, error: Exception) -> JSONResponse:
    """Our errors, raised anywhere in a route: the extension's status and error object."""
    request.state.record.error_type = getattr(error, "error_type", None)
    return error_response(error)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    """A bug: logged (redacted, by correlation id) and answered as a generic `generation` error, never a traceback."""
    log.error("unexpected failure in %s (%s)", request.url.path, type(error).__name__, exc_info=error)
    return error_response(error)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    wrong = f"{request.method} is not allowed here" if error.status_code == 405 else "no such route"
    body = error_body(error_for_status(error.status_code, f"{wrong} under {API} (see openapi.json)"))
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


def _failure(error: BaseException) -> NetworkError:
    """The retryable `network` error of a replica that died or could not be reached mid-request."""
    log.warning("a model replica failed mid-request (%s)", type(error).__name__)
    return NetworkError(f"the model replica serving this request stopped ({type(error).__name__}); retry")


def _text(batch: list[Any]) -> str:
    return "".join(frame(event) for event in batch) if batch else KEEPALIVE_FRAME


class DiffusionIngress:
    """Token, limits and planning here; generations on the model replicas; the board for who holds what.

    A plain class, importable by its name (so Ray ships it by reference); `app.py` makes it
    the deployment with `serve.ingress()`, and Serve asks each replica for its FastAPI app
    (`__serve_build_asgi_app__`) once the replica is constructed.
    """

    def __init__(self, config: ServeConfig, replicas: DeploymentHandle, board: DeploymentHandle) -> None:
        open_log_files(config)
        self.config = config
        self.replicas = replicas
        self.board = board
        self.name = replica_name()
        self.catalog = DiffusionLLMService(settings_store=SettingsStore(config.settings_path),
                                           default_model=config.default_model)
        self.limiter = RateLimiter(config.rate_limit_per_minute, config.rate_limit_burst)
        self.metrics = MetricsStore(config.metrics_db or data_dir() / "serve-metrics.sqlite")

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The API: this replica's routes, the house rules (`Manners`), our error objects for every failure."""
        app = FastAPI(title="yipyap-jupyter on Ray Serve", openapi_url=None, docs_url=None, redoc_url=None)
        for path, method, endpoint in self.routes():
            app.add_api_route(API + path, endpoint, methods=[method])
        app.add_exception_handler(DiffusionError, _diffusion_error)
        app.add_exception_handler(HTTPException, _http_error)
        app.add_exception_handler(Exception, _unexpected)
        app.add_middleware(Manners, token=self.config.token, replica=self.name, metrics=self.metrics)
        return app

    def routes(self) -> list[tuple[str, str, Callable[..., Awaitable[Response]]]]:
        """The route table, as the extension's (`server/routes.py`): path under the API, verb, handler."""
        return [
            ("/models", "GET", self.models),
            ("/models/current", "GET", self.current),
            ("/models/current/unload", "POST", self.unload),
            ("/models/{model_id:path}/load", "POST", self.load),
            ("/models/{model_id:path}/download", "POST", self.download),
            ("/generate", "POST", self.generate),
            ("/generate/stream", "POST", self.generate_stream),
            ("/infill", "POST", self.infill),
            ("/infill/stream", "POST", self.infill_stream),
            ("/settings", "GET", self.settings),
            ("/settings", "PUT", self.update_settings),
            ("/downloads", "GET", self.downloads),
            ("/metrics", "GET", self.metrics_summary),
            ("/openapi.json", "GET", self.openapi),
        ]

    # -- models ----------------------------------------------------------------------

    async def models(self, request: Request) -> JSONResponse:
        """Known models; `loaded` (and the device) where some replica holds one."""
        _record(request, "models")
        held = {m["id"]: _info(m) for r in await self._reports() for m in r["models"] if m.get("loaded")}
        infos = [held.pop(m.id, m.model_dump()) for m in self.catalog.models()]
        return JSONResponse({"models": infos + list(held.values())})

    async def current(self, request: Request) -> JSONResponse:
        """The default model's info where a replica holds it (else another held one), and every replica's models."""
        _record(request, "models/current")
        reports = await self._reports()
        loaded = [m for r in reports for m in r["models"] if m.get("loaded")]
        first = next((m for m in loaded if m["model"] == self.config.default_model), loaded[0] if loaded else None)
        return JSONResponse({**(_info(first) if first is not None else {"loaded": False}), "replicas": reports})

    async def unload(self, request: Request) -> JSONResponse:
        """Every replica frees its models; the next request naming one loads it again."""
        _record(request, "models/current/unload")
        answers = await self._on_every_replica(lambda: self.replicas.unload.remote(correlation_id.get()))
        unloaded = sorted({model for models in answers.values() for model in models})
        return JSONResponse({"loaded": False, "unloaded": unloaded[0] if unloaded else None, "replicas": answers})

    async def load(self, model_id: str, request: Request) -> JSONResponse:
        """Every live replica holds `model_id`, loaded as the body asks; the info, and which replicas hold it."""
        record = _record(request, "models/load")
        body = parse_body(await request.body())
        validate(LoadRequest, body)
        self.catalog.manager.spec(model_id)  # an unknown model is refused before any replica evicts one for it
        answers = await self._on_every_replica(
            lambda: self.replicas.load.remote(model_id, body, correlation_id.get()))
        refusal = next(((replica, a) for replica, a in answers.items() if isinstance(a, ErrorEvent)), None)
        if refusal is not None:
            record.error_type = refusal[1].error_type
            return error_response(refusal[1].to_error(), refusal[0])
        infos: list[ModelInfo] = list(answers.values())
        record.model = infos[0].id
        return JSONResponse({**infos[0].model_dump(), "replicas": sorted(answers)},
                            headers={REPLICA_HEADER: ", ".join(sorted(answers))})

    async def download(self, model_id: str, request: Request) -> JSONResponse:
        """Start a download into this node's cache (202); poll `/downloads`."""
        _record(request, "models/download").model = model_id
        state = await asyncio.to_thread(self.catalog.downloads.start, model_id)
        return JSONResponse(state.model_dump(), status_code=202)

    async def downloads(self, request: Request) -> JSONResponse:
        _record(request, "downloads")
        models = await asyncio.to_thread(self.catalog.models)
        return JSONResponse({
            "models": [{"id": m.id, "repo_id": m.repo_id, "cached": m.cached, "size_on_disk": m.size_on_disk,
                        "path": m.path} for m in models],
            "downloads": [d.model_dump() for d in self.catalog.downloads.states()],
        })

    # -- generation ------------------------------------------------------------------

    async def generate(self, request: Request) -> Response:
        return await self._complete(request, "generate")

    async def infill(self, request: Request) -> Response:
        return await self._complete(request, "infill")

    async def generate_stream(self, request: Request) -> Response:
        return await self._stream(request, "generate")

    async def infill_stream(self, request: Request) -> Response:
        return await self._stream(request, "infill")

    # -- the rest --------------------------------------------------------------------

    async def settings(self, request: Request) -> JSONResponse:
        _record(request, "settings")
        return JSONResponse((await asyncio.to_thread(self.catalog.settings)).model_dump())

    async def update_settings(self, request: Request) -> JSONResponse:
        _record(request, "settings")
        body = parse_body(await request.body())
        return JSONResponse((await asyncio.to_thread(self.catalog.update_settings, body)).model_dump())

    async def metrics_summary(self, request: Request) -> JSONResponse:
        _record(request, "metrics")
        try:
            recent = int(request.query_params.get("recent", "20"))
        except ValueError:
            raise ValidationError("recent must be an integer") from None
        if not 0 <= recent <= 1000:
            raise ValidationError("recent must be between 0 and 1000")
        return JSONResponse(await asyncio.to_thread(self.metrics.summary, recent))

    async def openapi(self, request: Request) -> JSONResponse:
        _record(request, "openapi.json")
        return JSONResponse(openapi_document())

    # -- internals -------------------------------------------------------------------

    async def _start(self, request: Request, kind: Kind, stream: bool) -> DeploymentResponseGenerator[Any]:
        """Plan the request here (a refusal raises before any replica), then send it to one holding its model."""
        record = _record(request, f"{kind}/stream" if stream else kind, stream)
        body = parse_body(await request.body())
        plan = self.catalog.plan(kind, body)
        self.limiter.acquire(f"token|{request.client.host if request.client else '-'}")  # refusals spend nothing
        record.model = plan.model
        handle = self.replicas.options(stream=True, multiplexed_model_id=plan.model)
        call = handle.events.remote(kind, body, correlation_id.get())
        assert isinstance(call, DeploymentResponseGenerator)
        return call

    async def _complete(self, request: Request, kind: Kind) -> Response:
        """The whole generation, answered with the `complete` fields (or the error's status and object)."""
        call = await self._start(request, kind, stream=False)
        replica = None
        ended = False
        try:
            replica = await call.__anext__()
            async for batch in call:
                for event in batch:
                    if isinstance(event, ErrorEvent):
                        ended, request.state.record.error_type = True, event.error_type
                        return error_response(event.to_error(), replica)
                    if isinstance(event, CompleteEvent):
                        ended = True
                        return JSONResponse(event.model_dump(exclude={"type"}), headers={REPLICA_HEADER: replica})
            ended = True
        except REPLICA_FAILURES as error:
            ended = True
            await self._forget(replica)
            request.state.record.error_type = "network"
            return error_response(_failure(error), replica)
        finally:
            if not ended:
                call.cancel()  # the client went away
        return error_response(NetworkError("the model replica ended the request without a result"), replica)

    async def _stream(self, request: Request, kind: Kind) -> Response:
        """The generation as SSE: a refusal before the first event is answered as that error instead."""
        call = await self._start(request, kind, stream=True)
        replica = None
        try:
            replica = await call.__anext__()
            first = await call.__anext__()
        except REPLICA_FAILURES as error:
            call.cancel()
            await self._forget(replica)
            request.state.record.error_type = "network"
            return error_response(_failure(error), replica)
        except asyncio.CancelledError:  # the client left before the first event
            call.cancel()
            raise
        if first and isinstance(first[0], ErrorEvent):
            call.cancel()
            request.state.record.error_type = first[0].error_type
            return error_response(first[0].to_error(), replica)
        headers = {REPLICA_HEADER: replica, "Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(self._relay(request.state.record, replica, first, call), headers=headers,
                                 media_type=CONTENT_TYPE)

    async def _relay(self, record: RequestRecord, replica: str, first: list[Any],
                     call: DeploymentResponseGenerator[Any]) -> AsyncIterator[str]:
        """SSE text of each batch as it comes; a replica that dies ends the stream with one `network` error frame.

        The stream ends with its `complete` or `error` frame, without waiting for the replica's
        generator to say it is done (one Ray message less per request).
        """
        ended = False
        try:
            batch = first
            while True:
                ends = [event for event in batch if isinstance(event, ErrorEvent | CompleteEvent)]
                if ends:
                    ended, record.error_type = True, getattr(ends[0], "error_type", None)
                yield _text(batch)
                if ended:
                    return
                try:
                    batch = await call.__anext__()
                except StopAsyncIteration:
                    return
                except REPLICA_FAILURES as error:
                    ended = True
                    await self._forget(replica)
                    record.error_type = "network"
                    yield frame(ErrorEvent.from_error(_failure(error)))
                    return
        finally:
            if not ended:
                call.cancel()  # a client that went away cancels the generation on the replica

    async def _reports(self) -> list[dict[str, Any]]:
        """The live replicas' last reports, from the board."""
        reports: list[dict[str, Any]] = await self.board.replicas.remote()
        return reports

    async def _forget(self, replica: str | None) -> None:
        """Take a replica seen dying off the board at once (its heartbeats would take three periods)."""
        if replica is not None:
            await self.board.forget.remote(replica)

    async def _on_every_replica(self, send: Callable[[], Awaitable[tuple[str, Any]]]) -> dict[str, Any]:
        """Send a call as often as it takes for every live replica to have answered once (bounded rounds).

        Serve routes each call to one replica of its choosing (of two it draws, the one with fewer
        calls in flight), so a round sends twice as many calls as there are live replicas, all at
        once, for the router to spread; the calls are idempotent, and a replica that answers twice
        counts once. A round of one call at a time could meet the same replica round after round.
        """
        answers: dict[str, Any] = {}
        for _ in range(BROADCAST_ROUNDS):
            live = {report["replica"] for report in await self._reports()}
            if answers and not live - answers.keys():
                break
            for replica, answer in await asyncio.gather(*(send() for _ in range(2 * max(1, len(live))))):
                answers.setdefault(replica, answer)
        return answers


def _info(held: dict[str, Any]) -> dict[str, Any]:
    """A board entry of a held model as the extension's model info (without the board's own key)."""
    return {key: value for key, value in held.items() if key != "model"}
