"""Downloads through a hub on loopback (HF_ENDPOINT), in the background, with byte progress and resumption."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import huggingface_hub.constants
import pytest
from loopback_hub import LoopbackHub
from server_helpers import as_json

REPO = "GSAI-ML/LLaDA-8B-Base"


@pytest.fixture
def hub(tiny_llada_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """The loopback hub, with the first transfer of the weights breaking off half way; downloads allowed."""
    server = LoopbackHub(REPO, tiny_llada_dir, interrupt_once=("model.safetensors",))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # Small reads, so the half that arrived before the break is on disk and the retry can resume from it.
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 8192)
    with server.running():
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        yield server


async def poll_until_finished(jp_fetch, model_id: str) -> tuple[dict, list[tuple[int, int]]]:
    seen = []
    for _ in range(600):
        downloads = as_json(await jp_fetch("api", "diffusion", "downloads"))["downloads"]
        state = next(d for d in downloads if d["model_id"] == model_id)
        seen.append((state["bytes_done"], state["bytes_total"]))
        if state["state"] != "downloading":
            return state, seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"download still running: {seen[-3:]}")


async def test_download_in_background_resumes_and_loads(jp_fetch, hub: LoopbackHub, hub_cache: Path,
                                                        tiny_llada_dir: Path) -> None:
    before = {m["id"]: m for m in as_json(await jp_fetch("api", "diffusion", "downloads"))["models"]}
    assert not before["llada-8b-base"]["cached"]

    started = await jp_fetch("api", "diffusion", "models", "llada-8b-base", "download", method="POST", body="")
    assert started.code == 202 and as_json(started)["state"] in ("downloading", "done")
    state, seen = await poll_until_finished(jp_fetch, "llada-8b-base")
    assert state["state"] == "done", state
    weights = (tiny_llada_dir / "model.safetensors").stat().st_size
    assert state["bytes_done"] == state["bytes_total"] >= weights
    assert all(done <= total for done, total in seen)

    ranges = [r for method, path, r in hub.requests if method == "GET" and path.endswith("/model.safetensors")]
    assert len(ranges) == 2 and ranges[0] is None
    assert ranges[1].startswith("bytes=") and 0 < int(ranges[1][6:].split("-")[0]) < weights  # resumed, not restarted
    snapshot = next(hub_cache.glob("models--GSAI-ML--LLaDA-8B-Base/snapshots/*"))
    assert (snapshot / "model.safetensors").read_bytes() == (tiny_llada_dir / "model.safetensors").read_bytes()

    after = {m["id"]: m for m in as_json(await jp_fetch("api", "diffusion", "downloads"))["models"]}
    assert after["llada-8b-base"]["cached"]
    loaded = as_json(await jp_fetch("api", "diffusion", "models", "llada-8b-base", "load", method="POST",
                                    body=json.dumps({"device": "cpu"})))
    assert loaded["loaded"] and loaded["id"] == "llada-8b-base"


async def test_download_with_the_hub_unreachable_fails_as_network(jp_fetch, hub: LoopbackHub,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    await jp_fetch("api", "diffusion", "models", "llada-8b-base", "download", method="POST", body="")
    state, _ = await poll_until_finished(jp_fetch, "llada-8b-base")
    assert state["state"] == "failed" and state["error"]["error_type"] == "network"
