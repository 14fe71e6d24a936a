"""Bounded inputs and house rules: body size and depth, unknown paths, verbs, strangers, refused streams."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest
from held_network import HeldNetwork
from server_helpers import TOKENLESS, eventually, sse_events
from tornado.httpclient import HTTPClientError

from yipyap_jupyter.server.bodies import MAX_BODY_BYTES, MAX_JSON_DEPTH
from yipyap_jupyter.server.state import SETTINGS_KEY


async def refused(jp_fetch, *parts: str, **kwargs) -> tuple[int, dict, dict]:
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("api", "diffusion", *parts, **kwargs)
    response = raised.value.response
    assert response.headers["Content-Type"].startswith("application/json"), parts
    return raised.value.code, json.loads(response.body), response.headers


def post(body: object) -> dict:
    return {"method": "POST", "body": body if isinstance(body, str) else json.dumps(body)}


async def test_oversized_and_deeply_nested_bodies_are_refused(jp_fetch) -> None:
    huge = json.dumps({"prompt": "x" * MAX_BODY_BYTES})
    for parts in (("generate",), ("generate", "stream"), ("infill",), ("models", "tiny", "load")):
        code, body, _ = await refused(jp_fetch, *parts, **post(huge))
        assert (code, body["error_type"], body["retryable"]) == (413, "validation", False), parts
    code, body, _ = await refused(jp_fetch, "settings", method="PUT", body=huge)
    assert code == 413
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        nested = '{"prompt": "x", "seed": ' + "[" * depth + "]" * depth + "}"
        for parts in (("generate",), ("infill", "stream")):
            code, body, _ = await refused(jp_fetch, *parts, **post(nested))
            assert (code, body["error_type"]) == (400, "validation"), (parts, depth)
            assert "deeper" in body["message"]


async def test_unknown_paths_are_json_404_and_wrong_verbs_say_what_is_allowed(jp_fetch) -> None:
    for path in (("nothing",), ("models", "tiny", "explode"), ("generate", "stream", "more")):
        code, body, _ = await refused(jp_fetch, *path)
        assert (code, set(body)) == (404, {"error_type", "message", "retryable"}), path
    code, _, _ = await refused(jp_fetch, "nothing", headers=TOKENLESS)
    assert code == 403  # strangers learn nothing about paths
    for method, parts, allowed in [("GET", ("generate",), "POST, OPTIONS"), ("DELETE", ("settings",), "GET, PUT, OPTIONS"),
                                   ("PUT", ("models",), "GET, OPTIONS")]:
        code, body, headers = await refused(jp_fetch, *parts, method=method,
                                            body=None if method in ("GET", "DELETE") else "{}")
        assert (code, body["error_type"], headers["Allow"]) == (405, "validation", allowed), parts
        verbs = allowed.removesuffix(", OPTIONS")
        assert body["message"] == f"{method} is not allowed here: this route answers {verbs}", parts


async def test_strangers_leave_no_metrics_rows(jp_fetch, tmp_path: Path) -> None:
    for method, parts in [("GET", ("models",)), ("POST", ("generate",)), ("GET", ("nothing",))]:
        with pytest.raises(HTTPClientError):
            await jp_fetch("api", "diffusion", *parts, method=method, headers=TOKENLESS,
                           body="{}" if method == "POST" else None)
    options = await jp_fetch("api", "diffusion", "generate", method="OPTIONS", headers=TOKENLESS,
                             raise_error=False)
    assert options.code == 200  # a CORS preflight, answered by Jupyter for anyone
    await jp_fetch("api", "diffusion", "models")
    with sqlite3.connect(tmp_path / "metrics.sqlite") as db:
        rows = db.execute("SELECT method, endpoint, status FROM requests").fetchall()
    assert rows == [("GET", "models", 200)]


async def test_temperatures_too_small_to_compute_are_400(jp_fetch) -> None:
    for parts in (("generate",), ("generate", "stream")):
        code, body, _ = await refused(jp_fetch, *parts, **post({"prompt": "x", "temperature": 1e-300}))
        assert (code, body["error_type"], body["retryable"]) == (400, "validation", False), parts
        assert "temperature" in body["message"]


async def test_a_stream_refused_for_its_content_is_400_before_any_frame(jp_fetch) -> None:
    for parts, request in [(("generate", "stream"), {"prompt": "x", "max_new_tokens": 8, "block_length": 3}),
                           (("infill", "stream"), {"prefix": "x", "max_new_tokens": 8, "block_length": 3,
                                                   "variable": False})]:
        code, body, _ = await refused(jp_fetch, *parts, **post(request))
        assert (code, body["error_type"]) == (400, "validation"), parts
        assert "block_length" in body["message"]


async def test_a_generation_queued_behind_an_unload_loads_its_model(jp_fetch, jp_serverapp) -> None:
    """Generation A runs, an unload waits for it, generation B waits behind the unload: B loads the model it was
    planned for (the default) in its own turn and completes."""
    manager = jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager
    line = manager._queue  # the manager's turns, to watch
    await jp_fetch("api", "diffusion", "generate", **post({"prompt": "x", "max_new_tokens": 2, "steps": 1}))  # loaded

    chunks: list[bytes] = []
    queued_chunks: list[bytes] = []
    with HeldNetwork(manager.loaded_model.network) as held:  # A runs until B has queued, however fast it is
        running = asyncio.ensure_future(jp_fetch(
            "api", "diffusion", "generate", "stream", streaming_callback=chunks.append,
            **post({"prompt": "once upon a time", "max_new_tokens": 16, "steps": 16})))
        await held.held(1)
        unload = asyncio.ensure_future(jp_fetch("api", "diffusion", "models", "current", "unload", **post({})))
        await eventually(lambda: line.length >= 2, lambda: f"{line.length} in the line")  # the unload, behind A
        queued = asyncio.ensure_future(jp_fetch("api", "diffusion", "generate", "stream",
                                                streaming_callback=queued_chunks.append,
                                                **post({"prompt": "x", "max_new_tokens": 4, "steps": 2})))
        await eventually(lambda: b"queued" in b"".join(queued_chunks), lambda: b"".join(queued_chunks))
    await queued
    events = sse_events(b"".join(queued_chunks))
    assert "queued: 2 requests ahead" in [e.get("message") for e in events]  # behind A and the unload
    assert events[-1]["type"] == "complete", events[-1]
    assert any(str(e.get("message", "")).startswith("loading") for e in events)
    await running
    assert sse_events(b"".join(chunks))[-1]["type"] == "complete"
    assert json.loads((await unload).body)["loaded"] is False
    assert json.loads((await jp_fetch("api", "diffusion", "models", "current")).body)["loaded"] is True
