"""Concurrent streams on a real server share the forward passes, and each still ends on its own terms."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from server_helpers import sse_events


@pytest.fixture(scope="module")
def slow_llada_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wider than the shared tiny checkpoint, so a long generation takes a while."""
    from checkpoints import make_llada_checkpoint

    return make_llada_checkpoint(tmp_path_factory.mktemp("llada-batching"), n_layers=4, d_model=128)


@pytest.fixture
def yipyap_traits(slow_llada_dir: Path) -> dict:
    return {"default_model": str(slow_llada_dir), "max_batch_size": 4}


def _body(prompt: str, seed: int, **more: object) -> dict:
    return {"prompt": prompt, "max_new_tokens": 128, "steps": 128, "block_length": 32, "seed": seed,
            "temperature": 0.7, **more}


async def _leave_after_first_step(port: int, base_url: str, auth: dict, body: dict) -> None:
    """A raw streaming request whose client hangs up at its first step frame."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST {base_url}api/diffusion/generate/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {auth['Authorization']}\r\nContent-Type: application/json\r\n"
            f"X-Correlation-ID: leaving\r\nContent-Length: {len(payload)}\r\n\r\n")
    writer.write(head.encode() + payload)
    await writer.drain()
    received = b""
    while b'"type":"step"' not in received:
        chunk = await reader.read(65536)
        assert chunk, received
        received += chunk
    writer.close()


async def test_streams_batched_together_end_alone(jp_fetch, jp_http_port: int, jp_base_url: str,
                                                  jp_auth_header: dict, tmp_path: Path) -> None:
    """A client that hangs up and a request past its deadline leave the batch; the others finish as alone."""
    await jp_fetch("api", "diffusion", "models", "current")  # the server is listening

    async def stream(body: dict) -> list[dict]:
        answer = await jp_fetch("api", "diffusion", "generate", "stream", method="POST", body=json.dumps(body))
        return sse_events(answer.body)

    solo = [await stream(_body(p, i)) for i, p in enumerate(["def f(x):", "import os"])]
    _, timed_out, *kept = await asyncio.gather(
        _leave_after_first_step(jp_http_port, jp_base_url, jp_auth_header, _body("class A:", 2)),
        stream(_body("while True:", 3, timeout=0.5)),
        stream(_body("def f(x):", 0)),
        stream(_body("import os", 1)),
    )
    assert timed_out[-1]["type"] == "error" and timed_out[-1]["error_type"] == "timeout"
    # the requests that stayed decode what they decode alone
    for alone, together in zip(solo, kept, strict=True):
        assert together[-1]["type"] == "complete"
        assert together[-1]["text"] == alone[-1]["text"]
    log = tmp_path / "yipyap-logs" / "structured.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    stopped = [r["message"] for r in records if r["correlation_id"] == "leaving" and "cancelled at step" in r["message"]]
    assert stopped and int(stopped[0].rsplit(" ", 1)[1]) < 128
