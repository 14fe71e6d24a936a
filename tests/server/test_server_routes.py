"""Every route through a real Jupyter server: answers, authentication, base_url, correlation ids."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from checkpoints import add_to_hub_cache
from server_helpers import TOKENLESS, as_json, check_steps, sse_events
from tornado.httpclient import HTTPClientError

from yipyap_jupyter.engine.families import KNOWN_MODELS

ROUTES = [
    ("GET", "models"), ("POST", "models/tiny/load"), ("GET", "models/current"), ("POST", "models/current/unload"),
    ("POST", "generate"), ("POST", "generate/stream"), ("POST", "infill"), ("POST", "infill/stream"),
    ("GET", "settings"), ("PUT", "settings"), ("GET", "downloads"), ("POST", "models/tiny/download"),
    ("GET", "metrics"), ("GET", "openapi.json"),
]


def body_for(method: str) -> str | None:
    return json.dumps({"prompt": "x"}) if method in ("POST", "PUT") else None


@pytest.mark.parametrize("headers", [TOKENLESS, {"Authorization": "token not-the-token"}], ids=["no token", "wrong token"])
async def test_every_route_needs_authentication(jp_fetch, headers: dict[str, str]) -> None:
    """Refused as `auth` in our words, for GET and POST alike (a wrong token on POST is not an XSRF riddle)."""
    for method, route in ROUTES:
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("api", "diffusion", *route.split("/"), method=method, body=body_for(method),
                           headers=headers)
        body = json.loads(refused.value.response.body)
        assert (refused.value.code, body["error_type"], body["retryable"]) == (403, "auth", False), route
        assert body["message"].startswith("not authenticated: send a valid Jupyter token"), (route, body)


async def test_model_lifecycle(jp_fetch, hub_cache: Path, tiny_llada_dir: Path, other_llada_dir: Path) -> None:
    add_to_hub_cache(hub_cache, "GSAI-ML/LLaDA-8B-Instruct", tiny_llada_dir)
    add_to_hub_cache(hub_cache, "GSAI-ML/LLaDA-8B-Base", other_llada_dir)
    models = {m["id"]: m for m in as_json(await jp_fetch("api", "diffusion", "models"))["models"]}
    assert set(KNOWN_MODELS) <= set(models)
    assert models["llada-8b-instruct"]["cached"] and not models["dream-v0-instruct-7b"]["cached"]
    assert as_json(await jp_fetch("api", "diffusion", "models", "current")) == {"loaded": False}

    loaded = as_json(await jp_fetch("api", "diffusion", "models", "llada-8b-instruct", "load", method="POST",
                                    body=json.dumps({"device": "cpu"})))
    assert loaded["loaded"] and loaded["device"] == "cpu" and loaded["id"] == "llada-8b-instruct"
    assert loaded["fallback"] is None
    assert as_json(await jp_fetch("api", "diffusion", "models", "current"))["id"] == "llada-8b-instruct"

    switched = as_json(await jp_fetch("api", "diffusion", "models", "llada-8b-base", "load", method="POST", body=""))
    assert switched["id"] == "llada-8b-base"
    listed = as_json(await jp_fetch("api", "diffusion", "models"))["models"]
    assert [m["id"] for m in listed if m["loaded"]] == ["llada-8b-base"]
    done = as_json(await jp_fetch("api", "diffusion", "generate", method="POST",
                                  body=json.dumps({"prompt": "x", "max_new_tokens": 4, "steps": 2})))
    assert done["model_used"] == "llada-8b-base"

    unloaded = as_json(await jp_fetch("api", "diffusion", "models", "current", "unload", method="POST", body=""))
    assert unloaded == {"loaded": False, "unloaded": "llada-8b-base"}
    assert as_json(await jp_fetch("api", "diffusion", "models", "current")) == {"loaded": False}


async def test_load_by_path_needs_it_url_encoded(http_server_client, jp_base_url: str, jp_auth_header: dict,
                                                 tiny_llada_dir: Path) -> None:
    url = f"{jp_base_url}api/diffusion/models/{quote(str(tiny_llada_dir), safe='')}/load"
    loaded = as_json(await http_server_client.fetch(url, method="POST", body="{}", headers=jp_auth_header))
    assert loaded["id"] == str(tiny_llada_dir) and loaded["loaded"]


async def test_generate_and_infill(jp_fetch, tiny_llada_dir: Path) -> None:
    done = as_json(await jp_fetch("api", "diffusion", "generate", method="POST",
                                  body=json.dumps({"prompt": "once upon", "max_new_tokens": 8, "steps": 4})))
    assert {"text", "raw_text", "history", "generation_time", "model_used", "tokens", "steps"} <= set(done)
    assert done["model_used"] == str(tiny_llada_dir) and done["steps"] == 4 and len(done["history"]) == 4
    filled = as_json(await jp_fetch("api", "diffusion", "infill", method="POST",
                                    body=json.dumps({"prefix": "def x", "suffix": "return y", "length": 5})))
    assert filled["tokens"] <= 5 and filled["steps"] >= 1


async def test_generate_stream(jp_fetch) -> None:
    chunks: list[bytes] = []
    response = await jp_fetch("api", "diffusion", "generate", "stream", method="POST",
                              body=json.dumps({"prompt": "the cat", "max_new_tokens": 16, "steps": 8}),
                              streaming_callback=chunks.append)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "no-cache" in response.headers["Cache-Control"]
    events = sse_events(b"".join(chunks))
    statuses = [e["message"] for e in events if e["type"] == "status"]
    assert statuses[0] == "Starting text generation..." and any(m.startswith("loading") for m in statuses)
    steps = check_steps(events, last_step=8)
    assert [e["type"] for e in events] == ["status"] * len(statuses) + ["step"] * len(steps) + ["complete"]


async def test_infill_stream(jp_fetch) -> None:
    response = await jp_fetch("api", "diffusion", "infill", "stream", method="POST",
                              body=json.dumps({"prefix": "def x", "suffix": "return y", "variable": True,
                                               "max_new_tokens": 12}))
    types = [e["type"] for e in sse_events(response.body)]
    first_step = types.index("step")
    assert set(types[:first_step]) == {"status"} and types[-1] == "complete"
    assert set(types[first_step:-1]) == {"step"}


async def test_settings_round_trip(jp_fetch, jp_config_dir: Path) -> None:
    assert as_json(await jp_fetch("api", "diffusion", "settings"))["max_new_tokens"] is None  # each model's own default
    updated = as_json(await jp_fetch("api", "diffusion", "settings", method="PUT",
                                     body=json.dumps({"max_new_tokens": 12, "auto_trim": False})))
    assert updated["max_new_tokens"] == 12 and updated["auto_trim"] is False
    saved = json.loads((jp_config_dir / "yipyap_jupyter" / "settings.json").read_text())
    assert saved["max_new_tokens"] == 12
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("api", "diffusion", "settings", method="PUT", body=json.dumps({"max_new_tokens": 50000}))
    assert refused.value.code == 400
    assert json.loads((jp_config_dir / "yipyap_jupyter" / "settings.json").read_text())["max_new_tokens"] == 12
    streamed = await jp_fetch("api", "diffusion", "generate", "stream", method="POST",
                              body=json.dumps({"prompt": "a", "steps": 3}))
    first_step = next(e for e in sse_events(streamed.body) if e["type"] == "step")
    assert len(first_step["pieces"]) == 12  # the saved max_new_tokens is the request's default


async def test_correlation_id(jp_fetch) -> None:
    echoed = await jp_fetch("api", "diffusion", "models", headers={"X-Correlation-ID": "trace-42"})
    assert echoed.headers["X-Correlation-ID"] == "trace-42"
    fresh = await jp_fetch("api", "diffusion", "models", headers={"X-Correlation-ID": "not ok; <script>"})
    assert fresh.headers["X-Correlation-ID"] not in ("", "not ok; <script>")
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("api", "diffusion", "generate", method="POST", body="{}",
                       headers={"X-Correlation-ID": "trace-43"})
    assert refused.value.response.headers["X-Correlation-ID"] == "trace-43"


async def test_metrics_summarise_requests(jp_fetch) -> None:
    await jp_fetch("api", "diffusion", "models")
    await jp_fetch("api", "diffusion", "generate", "stream", method="POST",
                   body=json.dumps({"prompt": "x", "max_new_tokens": 4, "steps": 2}))
    with pytest.raises(HTTPClientError):
        await jp_fetch("api", "diffusion", "generate", method="POST", body=json.dumps({"prompt": ""}))
    summary = as_json(await jp_fetch("api", "diffusion", "metrics", params={"recent": "5"}))
    endpoints = summary["endpoints"]
    assert endpoints["models"]["count"] == 1 and endpoints["generate/stream"]["count"] == 1
    assert endpoints["generate"]["errors"] == 1
    streams = [r for r in summary["recent"] if r["stream"]]
    assert streams and streams[0]["status"] == 200 and streams[0]["error_type"] is None


@pytest.mark.parametrize("yipyap_traits", [{"diffusion_llm_enabled": False}], indirect=True)
async def test_disabled_extension_registers_no_route(jp_fetch) -> None:
    for route in ("models", "openapi.json"):
        with pytest.raises(HTTPClientError) as missing:
            await jp_fetch("api", "diffusion", route)
        assert missing.value.code == 404
