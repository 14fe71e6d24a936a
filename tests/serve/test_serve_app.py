"""The Serve application behind a Jupyter server in proxy mode: the same API, spread over replicas, robust to a dead one.

One `yipyap-serve` process (local Ray, `tiny`, two replicas) serves the whole module. Every test
starts once both replicas hold `tiny`, so tests stand alone in any order: the one that kills a
replica waits for Serve to bring it back, and a test after it waits too if that took longer.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from held_network import HeldChild
from server.server_helpers import as_json, check_steps, sse_events
from tornado.httpclient import HTTPClientError

from yipyap_jupyter.kernel.client import DiffusionClient
from yipyap_jupyter.kernel.discovery import ServerInfo
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore

if importlib.util.find_spec("ray") is None or importlib.util.find_spec("fastapi") is None:  # neither imports ray
    pytest.skip("Ray Serve is not installed: pip install 'yipyap-jupyter[serve]'", allow_module_level=True)

#: Sampled, not greedy, so the seed decides the text: the same seed must give the same text everywhere.
GENERATE = {"prompt": "def fibonacci(n):", "max_new_tokens": 64, "steps": 64, "temperature": 0.8, "seed": 3}
INFILL = {"prefix": "def add(a, b):\n", "suffix": "\n\nprint(add(1, 2))\n", "length": 8, "seed": 1}
#: A run the test kills a replica in (its network held at the second step, so the run is still going).
LONG = {"prompt": "import os\n", "max_new_tokens": 400, "steps": 400}
#: Seconds a replica may take to start and load `tiny` (conftest's START_SECONDS: here, under load, 2.5 minutes
#: went by from a replica's death to its successor's `tiny` loaded).
REPLICA_START_SECONDS = 180


def post(body: object) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps(body)}


def replicas_holding(current: dict[str, Any], model: str = "tiny") -> list[str]:
    """The replicas that `GET /models/current` says have `model` loaded."""
    return [r["replica"] for r in current["replicas"] if any(m["id"] == model for m in r["models"] if m.get("loaded"))]


def wait_for_both_replicas(serve_app: Any, timeout: float = REPLICA_START_SECONDS) -> list[str]:
    """Block until both replicas hold `tiny` (asked of the application itself); the replicas that do."""
    headers = {"Authorization": f"token {serve_app.token}"}
    until = time.monotonic() + timeout
    while True:
        current = httpx.get(f"{serve_app.url}/api/diffusion/models/current", headers=headers, timeout=60)
        holding = replicas_holding(current.raise_for_status().json())
        if len(holding) == 2:
            return holding
        assert time.monotonic() < until, f"{len(holding)} replicas held tiny after {timeout:g} s: {current.json()}"
        time.sleep(1)


@pytest.fixture(autouse=True)
def both_replicas_hold_tiny(serve_app: Any) -> None:
    """What every test here starts from, whichever test ran before it."""
    wait_for_both_replicas(serve_app)


@pytest.fixture(scope="module")
def local(serve_app: Any) -> DiffusionLLMService:
    """The same model run in this process, with the same user settings as the application."""
    return DiffusionLLMService(settings_store=SettingsStore(serve_app.settings_file), default_model="tiny")


def test_status_line_says_where_it_listens_and_what_each_replica_loaded(serve_app: Any) -> None:
    assert f"{serve_app.url}/api/diffusion" in serve_app.status_line
    assert "2 replicas:" in serve_app.status_line
    assert serve_app.status_line.count("tiny on cpu") == 2, serve_app.status_line


async def test_streams_through_the_proxy_are_a_local_runs_text_step_by_step(
    jp_fetch: Any, serve_app: Any, local: DiffusionLLMService
) -> None:
    arrivals: list[tuple[float, bytes]] = []
    response = await jp_fetch("api", "diffusion", "generate", "stream", **post(GENERATE),
                              streaming_callback=lambda chunk: arrivals.append((time.monotonic(), chunk)))
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["X-Replica"].startswith("DiffusionReplica#")  # relayed by the proxy
    events = sse_events(b"".join(chunk for _, chunk in arrivals))
    check_steps(events, last_step=GENERATE["steps"])
    assert events[-1]["text"] == local.generate(GENERATE).text
    first_step = next(i for i, (_, chunk) in enumerate(arrivals) if b'"type":"step"' in chunk)
    end = next(i for i, (_, chunk) in enumerate(arrivals) if b'"type":"complete"' in chunk)
    assert first_step < end, "the steps came only with the end"

    filled = sse_events((await jp_fetch("api", "diffusion", "infill", "stream", **post(INFILL))).body)
    assert filled[-1]["type"] == "complete" and filled[-1]["text"] == local.infill(INFILL).text
    done = as_json(await jp_fetch("api", "diffusion", "generate", **post(GENERATE)))
    assert done["text"] == events[-1]["text"] and done["model_used"] == "tiny"


async def test_the_ingress_and_the_replica_log_a_request_by_its_correlation_id_without_its_prompt(
    jp_fetch: Any, serve_app: Any
) -> None:
    secret = "def secret_prompt_4711():"
    correlation = "serve-test-0123456789abcdef"
    await jp_fetch("api", "diffusion", "generate", **post({"prompt": secret, "max_new_tokens": 8, "steps": 4}),
                   headers={"X-Correlation-ID": correlation})
    deadline = time.monotonic() + 60  # the replica's log lines come from another process, later on a busy machine
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in (serve_app.log_dir / "structured.log").read_text().splitlines()]
        loggers = {line["logger"] for line in lines if line.get("correlation_id") == correlation}
        if any(".service." in name for name in loggers) and any(".serve." in name for name in loggers):
            break
        await asyncio.sleep(0.2)
    assert any(".service." in name for name in loggers) and any(".serve." in name for name in loggers), loggers
    assert "secret_prompt_4711" not in (serve_app.log_dir / "structured.log").read_text()
    assert "secret_prompt_4711" not in (serve_app.log_dir / "backend.log").read_text()


async def test_concurrent_requests_spread_over_both_replicas(jp_fetch: Any) -> None:
    """Rounds of 8 at once until both replicas answered: a loaded machine can let one round's requests
    arrive one after the other, each finding one replica idle (Serve's router then picks either)."""
    current = as_json(await jp_fetch("api", "diffusion", "models", "current"))
    assert len(replicas_holding(current)) == 2, current
    body = {"prompt": "x = ", "max_new_tokens": 16, "steps": 16}
    answered: list[set[str]] = []
    while len(answered) < 5 and set().union(*answered) != set(replicas_holding(current)):
        responses = await asyncio.gather(*(jp_fetch("api", "diffusion", "generate", **post(body)) for _ in range(8)))
        answered.append({r.headers["X-Replica"] for r in responses})
    assert set().union(*answered) == set(replicas_holding(current)), answered


async def test_models_load_and_unload_reach_every_replica(jp_fetch: Any, serve_app: Any) -> None:
    unloaded = as_json(await jp_fetch("api", "diffusion", "models", "current", "unload", method="POST", body=""))
    assert unloaded["unloaded"] == "tiny" and len(unloaded["replicas"]) == 2
    assert replicas_holding(as_json(await jp_fetch("api", "diffusion", "models", "current"))) == []
    loaded = as_json(await jp_fetch("api", "diffusion", "models", "tiny", "load", **post({"device": "cpu"})))
    assert loaded["id"] == "tiny" and loaded["device"] == "cpu" and len(loaded["replicas"]) == 2
    assert len(replicas_holding(as_json(await jp_fetch("api", "diffusion", "models", "current")))) == 2

    # the kernel's server backend talks to the application directly, unchanged
    client = DiffusionClient("server", server=ServerInfo(serve_app.url + "/", serve_app.token))
    current = client.current()
    assert current is not None and current.id == "tiny"
    assert client.generate(**GENERATE).text == as_json(
        await jp_fetch("api", "diffusion", "generate", **post(GENERATE)))["text"]


async def test_a_request_naming_another_model_loads_it_on_the_replica_serving_it(
    jp_fetch: Any, tiny_llada_dir: Any
) -> None:
    """Model multiplexing, one model per replica here: the replica that gets the request swaps, and says so."""
    other = str(tiny_llada_dir)
    body = {"prompt": "x = ", "max_new_tokens": 8, "steps": 4, "model": other}
    first = await jp_fetch("api", "diffusion", "generate", "stream", **post(body))
    events = sse_events(first.body)
    assert any(e["type"] == "status" and e["message"].startswith("loading") for e in events), events[:3]
    assert events[-1]["type"] == "complete" and events[-1]["model_used"] == other
    current = as_json(await jp_fetch("api", "diffusion", "models", "current"))
    assert replicas_holding(current, other) == [first.headers["X-Replica"]]
    assert len(replicas_holding(current)) == 1  # the other replica still holds tiny

    # Serve prefers a replica that holds the model (when its view is fresh); whichever serves it holds it after
    again = await jp_fetch("api", "diffusion", "generate", **post(body))
    holding = replicas_holding(as_json(await jp_fetch("api", "diffusion", "models", "current")), other)
    assert first.headers["X-Replica"] in holding and again.headers["X-Replica"] in holding

    restored = as_json(await jp_fetch("api", "diffusion", "models", "tiny", "load", **post({})))
    assert len(restored["replicas"]) == 2
    assert len(replicas_holding(as_json(await jp_fetch("api", "diffusion", "models", "current")))) == 2


async def test_refusals_keep_the_extensions_statuses_and_categories(jp_fetch: Any, serve_app: Any) -> None:
    for parts, body, status, error_type in [
        (("generate",), {"prompt": "x", "nope": 1}, 400, "validation"),
        (("generate", "stream"), {"prompt": "x", "model": "gpt-9"}, 404, "model_unavailable"),
        (("infill", "stream"), {"prefix": "", "suffix": ""}, 400, "validation"),
        (("models", "gpt-9", "load"), {}, 404, "model_unavailable"),
    ]:
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("api", "diffusion", *parts, **post(body))
        answer = json.loads(refused.value.response.body)
        assert (refused.value.code, answer["error_type"]) == (status, error_type), (parts, answer)
    document = as_json(await jp_fetch("api", "diffusion", "openapi.json"))
    assert "/generate/stream" in document["paths"]


def test_requests_without_the_token_are_refused(serve_app: Any) -> None:
    models = f"{serve_app.url}/api/diffusion/models"
    for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": serve_app.token}):
        refused = httpx.get(models, headers=headers)
        assert refused.status_code == 403 and refused.json()["error_type"] == "auth", headers
        assert refused.headers["X-Replica"].startswith("DiffusionIngress#")
    assert httpx.get(models, headers={"Authorization": f"Bearer {serve_app.token}"}).status_code == 200


async def test_generations_are_rate_limited_per_client(serve_app: Any) -> None:
    """The ingress's default bucket, as the extension's: bursts of 60, then 10 a second; refusals spend nothing."""
    async with httpx.AsyncClient(headers={"Authorization": f"token {serve_app.token}"}, timeout=120) as client:
        refused = await asyncio.gather(*(client.post(f"{serve_app.url}/api/diffusion/generate", json={"nope": 1})
                                         for _ in range(80)))
        assert {a.status_code for a in refused} == {400}
        quick = {"prompt": "x", "max_new_tokens": 2, "steps": 1}
        answers: list[httpx.Response] = []
        # 80 at once pass a burst of 60 unless the bucket refills (10 a second) while they arrive: a loaded
        # machine that spreads them over seconds gets more rounds, each spending what the last left
        for _ in range(4):
            answers += await asyncio.gather(*(client.post(f"{serve_app.url}/api/diffusion/generate", json=quick)
                                              for _ in range(80)))
            if any(a.status_code == 429 for a in answers):
                break
    limited = [a for a in answers if a.status_code == 429]
    assert limited and {a.status_code for a in answers} == {200, 429}, [a.status_code for a in answers]
    assert limited[0].json()["error_type"] == "network" and limited[0].json()["retryable"] is True
    assert int(limited[0].headers["Retry-After"]) >= 1
    await asyncio.sleep(6)  # the bucket fills again for the tests after this one


@pytest.fixture
def ray_driver(serve_app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """This process joined to the application's Ray cluster (as an operator's `ray` session would be).

    A local cluster Ray starts checks a token (here the one `serve_app` gave it), and Ray reads
    whether to send one when it is imported: so the switch is set first, and Ray imported here,
    not with the module.
    """
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", serve_app.ray_token)
    ray = importlib.import_module("ray")
    ray.init(address=serve_app.ray_address, namespace="serve", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


async def test_a_replica_killed_mid_stream_ends_it_with_one_network_error(
    jp_fetch: Any, serve_app: Any, ray_driver: Any, gate: HeldChild
) -> None:
    headers: list[str] = []
    chunks: list[bytes] = []
    killed: list[str] = []

    def kill_at_first_step(chunk: bytes) -> None:
        chunks.append(chunk)
        if not killed and b'"type":"step"' in chunk:
            replica = next(line.split(":", 1)[1].strip() for line in headers if line.lower().startswith("x-replica:"))
            ray_driver.kill(ray_driver.get_actor(f"SERVE_REPLICA::yipyap#{replica}"))
            killed.append(replica)

    gate.hold(free=1)  # the first step goes through, the second waits: the stream is running when its replica dies
    try:
        await asyncio.wait_for(jp_fetch("api", "diffusion", "generate", "stream", **post(LONG),
                                        header_callback=headers.append, streaming_callback=kill_at_first_step),
                               timeout=120)
    finally:
        gate.open()  # for the replica that Serve starts in place of the dead one: its load makes a check pass
    events = sse_events(b"".join(chunks))
    assert killed and events[-1]["type"] == "error", events[-3:]
    assert [e for e in events if e["type"] in ("error", "complete")] == [events[-1]]
    assert (events[-1]["error_type"], events[-1]["retryable"]) == ("network", True)

    after = await jp_fetch("api", "diffusion", "generate", **post({"prompt": "x", "max_new_tokens": 8, "steps": 4}))
    assert after.code == 200 and after.headers["X-Replica"] != killed[0]

    # Serve starts a replica in place of the dead one, which loads tiny first
    holding = await asyncio.to_thread(wait_for_both_replicas, serve_app)
    assert killed[0] not in holding, holding
