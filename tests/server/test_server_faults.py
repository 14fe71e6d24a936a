"""Out of memory on a (pretend) accelerator, at load and mid-generation, through a real server.

The server falls back to the CPU, says so (status frames, model info), and every
request in flight or waiting still gets its answer.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pretend_gpu import PretendGpu, full_while_on_gpu
from server_helpers import as_json, check_steps, sse_events

from yipyap_jupyter.server.state import SETTINGS_KEY

REQUEST = {"prompt": "once upon a time", "max_new_tokens": 8, "steps": 4, "seed": 7}


def post(body: object) -> dict:
    return {"method": "POST", "body": json.dumps(body)}


def statuses(events: list[dict[str, Any]]) -> list[str]:
    return [e["message"] for e in events if e["type"] == "status"]


async def test_out_of_memory_at_load_falls_back_to_cpu(
    jp_fetch, fake_cuda: Any, monkeypatch: pytest.MonkeyPatch, tiny_llada_dir: Path
) -> None:
    PretendGpu(monkeypatch, capacity=0)
    fallback = "out of memory on cuda:0 at load; running on cpu"
    events = sse_events((await jp_fetch("api", "diffusion", "generate", "stream", **post(REQUEST))).body)
    assert fallback in statuses(events)  # the default model, loaded on demand with device auto
    check_steps(events, last_step=4)
    current = as_json(await jp_fetch("api", "diffusion", "models", "current"))
    assert (current["device"], current["fallback"]) == ("cpu", fallback)


async def test_out_of_memory_mid_generation_loses_no_request(
    jp_fetch, jp_serverapp, http_server_client, jp_base_url: str, jp_auth_header: dict, fake_cuda: Any,
    monkeypatch: pytest.MonkeyPatch, tiny_llada_dir: Path,
) -> None:
    gpu = PretendGpu(monkeypatch, capacity=1)
    url = f"{jp_base_url}api/diffusion/models/{quote(str(tiny_llada_dir), safe='')}/load"
    loaded = json.loads((await http_server_client.fetch(url, method="POST", body=json.dumps(
        {"device": "cuda", "dtype": "float32"}), headers=jp_auth_header)).body)
    assert (loaded["device"], loaded["fallback"]) == ("cuda:0", None)
    manager = jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager
    # after the first pass no pass fits the GPU, however the requests are batched, until the model is on the CPU
    full = full_while_on_gpu(manager, manager.loaded_model)
    manager.loaded_model.network.register_forward_hook(lambda *passed: full.set())

    answers = await asyncio.gather(
        *(jp_fetch("api", "diffusion", "generate", "stream", **post(REQUEST)) for _ in range(3)),
        jp_fetch("api", "diffusion", "generate", **post(REQUEST)),
    )
    streams = [sse_events(answer.body) for answer in answers[:3]]
    # the requests decoded together when it happened say so, and all of them finish on the cpu
    assert any("out of memory on cuda:0; continuing on cpu" in statuses(events) for events in streams)
    texts = {events[-1]["raw_text"] for events in streams} | {as_json(answers[3])["raw_text"]}
    assert all(events[-1]["type"] == "complete" for events in streams) and len(texts) == 1  # same seed, same text
    current = as_json(await jp_fetch("api", "diffusion", "models", "current"))
    fallback = "out of memory on cuda:0 during generation; running on cpu"
    assert (current["device"], current["fallback"]) == ("cpu", fallback)
    assert list(gpu.resident) == []
