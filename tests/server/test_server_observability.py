"""Logs, metrics and redaction, and a client disconnect stopping its generation."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from pathlib import Path

import pytest
from held_network import HeldNetwork
from server_helpers import eventually, hang_up_at_first_step, sse_events
from tornado.httpclient import HTTPClientError

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.server.state import SETTINGS_KEY

CANARY = "CANARY-7d41e9 zebra quartz"


def post(body: object) -> dict:
    return {"method": "POST", "body": json.dumps(body)}


async def test_canary_prompt_never_leaves_the_request(jp_fetch, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    answers: list[bytes] = []
    answers.append((await jp_fetch("api", "diffusion", "generate",
                                   **post({"prompt": CANARY, "max_new_tokens": 4, "steps": 2}))).body)
    stream = await jp_fetch("api", "diffusion", "generate", "stream",
                            **post({"prompt": CANARY, "max_new_tokens": 4, "steps": 2}))
    answers.append(stream.body)
    answers.append((await jp_fetch("api", "diffusion", "infill", "stream",
                                   **post({"prefix": CANARY, "suffix": CANARY, "length": 3}))).body)
    for bad in ({"prompt": CANARY, "bogus": 1}, {"prompt": CANARY, "steps": 0}, {"prompt": CANARY, "timeout": 1e-9},
                {"prompt": CANARY, "model": "no-such-model"}):
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("api", "diffusion", "generate", **post(bad))
        answers.append(refused.value.response.body)
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("api", "diffusion", "generate", method="POST", body='{"prompt": "' + CANARY + '", oops}')
    answers.append(refused.value.response.body)

    logs = tmp_path / "yipyap-logs"
    structured = (logs / "structured.log").read_text()
    backend = (logs / "backend.log").read_text()
    database = b"".join(p.read_bytes() for p in tmp_path.glob("metrics.sqlite*"))
    for place, text in [("structured.log", structured), ("backend.log", backend), ("captured logs", caplog.text),
                        ("metrics DB", database.decode("latin-1"))] + [("answer", a.decode()) for a in answers]:
        assert CANARY not in text, place
        assert "CANARY-7d41e9" not in text, place

    records = [json.loads(line) for line in structured.splitlines()]
    assert all({"timestamp", "level", "logger", "message", "correlation_id"} <= set(r) for r in records)
    stream_id = stream.headers["X-Correlation-ID"]
    mine = [r["message"] for r in records if r["correlation_id"] == stream_id]
    assert any(m.startswith("stream generate/stream started") for m in mine)
    assert any(re.match(r"stream generate/stream ended \(complete\) after [0-9.]+ s", m) for m in mine)
    assert any(m == "generate finished" for m in mine)  # logged by the service, on a worker thread
    assert f"[{stream_id}]" in backend


@pytest.fixture
def yipyap_traits(slow_llada_dir: Path) -> dict:
    return {"default_model": str(slow_llada_dir)}


async def test_disconnect_cancels_the_generation_within_one_step(
    jp_fetch, jp_serverapp, jp_http_port: int, jp_base_url: str, jp_auth_header: dict, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await jp_fetch("api", "diffusion", "generate", **post({"prompt": "x", "max_new_tokens": 2, "steps": 1}))  # loaded
    noticed = threading.Event()
    cancel = CancelToken.cancel

    def noting(token: CancelToken) -> None:
        cancel(token)
        noticed.set()

    monkeypatch.setattr(CancelToken, "cancel", noting)
    total = 448
    body = {"prompt": "once upon a time", "max_new_tokens": total, "steps": total}
    network = jp_serverapp.web_app.settings[SETTINGS_KEY].service.manager.loaded_model.network
    # step 1 goes out; the client leaves while step 2's pass waits, and that pass ends once the server has noticed
    with HeldNetwork(network, free=1) as held:
        await hang_up_at_first_step(jp_http_port, jp_base_url, jp_auth_header, body, "leaving-early",
                                    first=lambda: held.held(2))
        await eventually(noticed.is_set, lambda: "the server never cancelled the stream")

    log = tmp_path / "yipyap-logs" / "structured.log"

    def mine() -> list[str]:
        return [r["message"] for r in map(json.loads, log.read_text().splitlines())
                if r["correlation_id"] == "leaving-early"]

    # the handler ends after its worker
    await eventually(lambda: any(m.startswith("stream generate/stream ended") for m in mine()), mine)
    assert any(m.startswith("stream generate/stream ended (cancelled)") for m in mine()), mine()
    stopped = [int(m.rsplit(" ", 1)[1]) for m in mine() if m.startswith("generate cancelled at step")]
    assert stopped == [3], mine()  # step 2 was in flight when the client left; step 3 never ran
    with sqlite3.connect(tmp_path / "metrics.sqlite") as db:
        row = db.execute("SELECT error_type, stream FROM requests WHERE correlation_id = 'leaving-early'").fetchone()
    assert row == ("cancelled", 1)
    after = sse_events((await jp_fetch("api", "diffusion", "generate", "stream",
                                       **post({"prompt": "x", "max_new_tokens": 4, "steps": 2}))).body)
    assert after[-1]["type"] == "complete"  # the model's turn was given back
