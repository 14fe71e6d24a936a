"""Every error category with its HTTP status, as a JSON body and as an SSE `error` frame."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest
import torch
from server_helpers import as_json
from tornado.httpclient import HTTPClientError

from yipyap_jupyter.server.app import DiffusionLLMApp


async def refused(jp_fetch, *parts: str, **kwargs) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as raised:
        await jp_fetch("api", "diffusion", *parts, **kwargs)
    response = raised.value.response
    assert response.headers["Content-Type"].startswith("application/json")
    return raised.value.code, json.loads(response.body)


def post(body: object) -> dict:
    return {"method": "POST", "body": body if isinstance(body, str) else json.dumps(body)}


async def test_validation_is_400(jp_fetch) -> None:
    for parts, kwargs in [
        (("generate",), post("{not json")),
        (("generate",), post({"prompt": "x", "colour": "red"})),
        (("generate",), post({"prompt": "   "})),
        (("generate",), post(["a", "list"])),
        (("generate",), post({"prompt": "x", "steps": True})),  # booleans are not integers
        (("infill",), post({"prefix": "a", "length": 5000})),
        (("generate", "stream"), post({"prompt": "x", "steps": -1})),  # refused before the stream opens
        (("models", "tiny", "load"), post({"device": "tpu"})),
        (("settings",), {"method": "PUT", "body": json.dumps({"preferred_device": "abacus"})}),
        (("metrics",), {"params": {"recent": "many"}}),
    ]:
        code, body = await refused(jp_fetch, *parts, **kwargs)
        assert (code, body["error_type"], body["retryable"]) == (400, "validation", False), (parts, body)
        assert set(body) == {"error_type", "message", "retryable"}
        assert not body["message"].startswith("body:") and "Value error" not in body["message"], body
    _, body = await refused(jp_fetch, "generate", **post({"prompt": "   "}))
    assert body["message"] == "prompt must not be empty"


async def test_unknown_model_is_404(jp_fetch) -> None:
    for parts in (("models", "gpt-9", "load"), ("models", "gpt-9", "download")):
        code, body = await refused(jp_fetch, *parts, **post({}))
        assert (code, body["error_type"]) == (404, "model_unavailable")
    code, body = await refused(jp_fetch, "models", "dream-v0-instruct-7b", "load", **post({}))
    assert code == 404 and "not in" in body["message"]  # known, but not in the cache


@pytest.mark.parametrize("name", ["x" * 300, "~nosuchuser"])
async def test_a_model_name_that_is_no_path_is_404(jp_fetch, name: str) -> None:
    """Found by the schemathesis runs: a 300-character model id, and one naming an unknown home (`~x`), were 500s."""
    for parts, body in ((("models", quote(name), "load"), {}), (("generate",), {"prompt": "x", "model": name})):
        code, answer = await refused(jp_fetch, *parts, **post(body))
        assert (code, answer["error_type"]) == (404, "model_unavailable"), parts


@pytest.mark.parametrize("yipyap_traits", [{"default_model": ""}], indirect=True)
async def test_no_model_loaded_is_409(jp_fetch) -> None:
    code, body = await refused(jp_fetch, "generate", **post({"prompt": "x"}))
    assert (code, body["error_type"]) == (409, "model_unavailable")
    code, body = await refused(jp_fetch, "infill", "stream", **post({"prefix": "x"}))  # before any frame
    assert (code, body["error_type"]) == (409, "model_unavailable")


async def test_corrupt_checkpoint_is_500_and_the_previous_model_still_answers(
    jp_fetch, http_server_client, jp_base_url: str, jp_auth_header: dict, tiny_llada_dir: Path, tmp_path: Path
) -> None:
    await jp_fetch("api", "diffusion", "generate", **post({"prompt": "x", "max_new_tokens": 4, "steps": 2}))
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_llada_dir, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    url = f"{jp_base_url}api/diffusion/models/{quote(str(corrupt), safe='')}/load"
    with pytest.raises(HTTPClientError) as raised:
        await http_server_client.fetch(url, method="POST", body="{}", headers=jp_auth_header)
    body = json.loads(raised.value.response.body)
    assert (raised.value.code, body["error_type"]) == (500, "model_loading")
    assert as_json(await jp_fetch("api", "diffusion", "models", "current"))["id"] == str(tiny_llada_dir)
    done = as_json(await jp_fetch("api", "diffusion", "generate", **post({"prompt": "x", "max_new_tokens": 4,
                                                                        "steps": 2})))
    assert done["model_used"] == str(tiny_llada_dir)


async def test_timeout_is_504_and_a_timeout_frame(jp_fetch) -> None:
    slow = {"prompt": "x", "max_new_tokens": 256, "steps": 256, "timeout": 1e-6}  # passes before any turn
    code, body = await refused(jp_fetch, "generate", **post(slow))
    assert (code, body["error_type"], body["retryable"]) == (504, "timeout", True)
    # the deadline passes before the first step: the stream is answered 504 before any frame
    code, streamed = await refused(jp_fetch, "generate", "stream", **post(slow))
    assert (code, streamed) == (504, body)


def served_model(jp_serverapp):
    """The model the in-process test server holds, to inject faults into its network."""
    from yipyap_jupyter.server.state import SETTINGS_KEY

    return jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager.loaded_model


async def test_generation_failure_is_500_generation(jp_fetch, jp_serverapp) -> None:
    quick = post({"prompt": "the cat sat on the mat", "max_new_tokens": 4, "steps": 2})
    await jp_fetch("api", "diffusion", "generate", **quick)

    def fail(module: torch.nn.Module, args: object) -> None:
        raise RuntimeError("expected all tensors to be on the same device")

    served_model(jp_serverapp).network.register_forward_pre_hook(fail)
    code, body = await refused(jp_fetch, "generate", **quick)
    assert (code, body["error_type"], body["retryable"]) == (500, "generation", False)
    assert "the cat sat" not in body["message"]


@pytest.mark.parametrize("yipyap_traits", [{"rate_limit_per_minute": 1.0, "rate_limit_burst": 2}], indirect=True)
async def test_rate_limit_is_429_with_retry_after_on_every_generation_route(jp_fetch) -> None:
    quick = post({"prompt": "x", "max_new_tokens": 2, "steps": 1})
    for parts in (("generate",), ("generate", "stream"), ("infill",)) * 2:  # refused requests spend nothing
        code, answer = await refused(jp_fetch, *parts, **post({"prompt": "x", "prefix": "x", "steps": 0}))
        assert (code, answer["error_type"]) == (400, "validation"), parts
    await jp_fetch("api", "diffusion", "generate", "stream", **quick)
    await jp_fetch("api", "diffusion", "generate", **quick)  # one bucket for streaming and non-streaming routes
    for parts, body in ((("generate",), quick), (("generate", "stream"), quick),
                        (("infill",), post({"prefix": "x"})), (("infill", "stream"), post({"prefix": "x"}))):
        with pytest.raises(HTTPClientError) as limited:
            await jp_fetch("api", "diffusion", *parts, **body)
        answer = json.loads(limited.value.response.body)
        assert (limited.value.code, answer["error_type"], answer["retryable"]) == (429, "network", True), parts
        assert answer["message"].startswith("rate limit: more than 1 generation requests a minute"), answer
        assert int(limited.value.response.headers["Retry-After"]) >= 1
    assert (await jp_fetch("api", "diffusion", "models")).code == 200  # quick routes are not limited


@pytest.mark.parametrize("yipyap_traits", [{"rate_limit_per_minute": DiffusionLLMApp.rate_limit_per_minute.default_value}],
                         indirect=True)
async def test_the_default_rate_limit_lets_a_person_work(jp_fetch) -> None:
    """The README's requests and more, as fast as one client can send them: none is refused by the default limit."""
    quick = {"max_new_tokens": 2, "steps": 1}
    for parts, body in [(("generate",), {"prompt": "x", **quick}), (("generate", "stream"), {"prompt": "x", **quick}),
                        (("infill",), {"prefix": "x", "suffix": "y", "length": 2}),
                        (("infill", "stream"), {"prefix": "x", "suffix": "y", "length": 2})] * 5:
        assert (await jp_fetch("api", "diffusion", *parts, **post(body))).code == 200, parts
