"""Concurrent streams on a real server share the forward passes, and each still ends on its own terms."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from held_network import HeldNetwork
from server_helpers import eventually, hang_up_at_first_step, sse_events

from yipyap_jupyter.server.state import SETTINGS_KEY


@pytest.fixture
def yipyap_traits(slow_llada_dir: Path) -> dict:
    return {"default_model": str(slow_llada_dir), "max_batch_size": 4}


def _body(prompt: str, seed: int, **more: object) -> dict:
    return {"prompt": prompt, "max_new_tokens": 128, "steps": 128, "block_length": 32, "seed": seed,
            "temperature": 0.7, **more}


async def test_streams_batched_together_end_alone(jp_fetch, jp_serverapp, jp_http_port: int, jp_base_url: str,
                                                  jp_auth_header: dict, tmp_path: Path) -> None:
    """A client that hangs up and a request past its deadline leave the batch; the others finish as alone."""
    chunks: dict[str, list[bytes]] = {}

    async def stream(body: dict, correlation_id: str) -> list[dict]:
        received = chunks.setdefault(correlation_id, [])
        await jp_fetch("api", "diffusion", "generate", "stream", method="POST", body=json.dumps(body),
                       headers={"X-Correlation-ID": correlation_id}, streaming_callback=received.append)
        return sse_events(b"".join(received))

    solo = [await stream(_body(p, i), f"solo-{i}") for i, p in enumerate(["def f(x):", "import os"])]
    log = tmp_path / "yipyap-logs" / "structured.log"

    def started() -> set[str]:
        return {r["correlation_id"] for r in map(json.loads, log.read_text().splitlines())
                if r["message"] == "generate started"}

    network = jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager.loaded_model.network
    with HeldNetwork(network) as held:  # no pass runs but those the test lets through
        together = asyncio.gather(
            hang_up_at_first_step(jp_http_port, jp_base_url, jp_auth_header, _body("class A:", 2), "leaving"),
            stream(_body("while True:", 3, timeout=0.5), "late"),
            stream(_body("def f(x):", 0), "kept-0"),
            stream(_body("import os", 1), "kept-1"),
        )
        everyone = {"leaving", "late", "kept-0", "kept-1"}
        await eventually(lambda: everyone <= started(), started)
        # passes one at a time until "late" has a step: its stream has begun and it is in the batch
        while b'"type":"step"' not in b"".join(chunks.get("late", [])):
            assert held.arrived < 32, "the late request never stepped"
            held.allow(1)
            await held.held(held.arrived + 1)
        await asyncio.sleep(0.6)  # past the 0.5 s timeout of "late", which cannot have finished: its next pass waits
    _, timed_out, *kept = await together
    assert timed_out[-1]["type"] == "error" and timed_out[-1]["error_type"] == "timeout"
    # the requests that stayed decode what they decode alone
    for alone, together_ in zip(solo, kept, strict=True):
        assert together_[-1]["type"] == "complete"
        assert together_[-1]["text"] == alone[-1]["text"]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    stopped = [r["message"] for r in records if r["correlation_id"] == "leaving" and "cancelled at step" in r["message"]]
    assert stopped and int(stopped[0].rsplit(" ", 1)[1]) < 128
