"""Proxy mode, shown with two servers on loopback; and the shipped config enabling the extension.

The upstream is a separate `jupyter server` process whose only configuration is the
JSON file this package installs into `jupyter_server_config.d`, plus a default model.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from server_helpers import as_json, check_steps, sse_events
from tornado.httpclient import HTTPClientError

import yipyap_jupyter

REPO_ROOT = Path(yipyap_jupyter.__file__).resolve().parent.parent
SHIPPED_CONFIG = REPO_ROOT / "jupyter-config" / "jupyter_server_config.d" / "yipyap_jupyter.json"


@dataclass
class Upstream:
    url: str
    token: str
    env: dict[str, str]
    settings_file: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory, tiny_llada_dir: Path) -> Iterator[Upstream]:
    root = tmp_path_factory.mktemp("upstream")
    config_dir = root / "config"
    (config_dir / "jupyter_server_config.d").mkdir(parents=True)
    shutil.copy(SHIPPED_CONFIG, config_dir / "jupyter_server_config.d")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_DATA_DIR": str(root / "data"),
           "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hf"),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    port, token = free_port(), secrets.token_hex(12)
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.port_retries=0",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={root}", "--ServerApp.base_url=/up/",
         f"--IdentityProvider.token={token}", f"--DiffusionLLMApp.default_model={tiny_llada_dir}",
         "--DiffusionLLMApp.preload=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/up"
    try:
        deadline = time.monotonic() + 120  # start-up and the preload
        while True:
            assert process.poll() is None, (root / "server.log").read_text()
            assert time.monotonic() < deadline, f"not ready in 120 s: {(root / 'server.log').read_text()[-3000:]}"
            try:
                current = httpx.get(f"{url}/api/diffusion/models/current", headers={"Authorization": f"token {token}"})
                if current.status_code == 200 and current.json().get("loaded"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        yield Upstream(url, token, env, config_dir / "yipyap_jupyter" / "settings.json")
    finally:
        process.kill()  # a throw-away test server: no need to wait for a graceful shutdown
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def yipyap_traits(upstream: Upstream, request: pytest.FixtureRequest) -> dict:
    """Proxy to the real upstream, or to `silent_upstream` for a test that asks for it."""
    traits = {"mode": "proxy", "proxy_url": upstream.url, "proxy_token": upstream.token,
              **getattr(request, "param", {})}
    if "silent_upstream" in request.fixturenames:
        traits["proxy_url"] = request.getfixturevalue("silent_upstream")
    return traits


def post(body: object) -> dict:
    return {"method": "POST", "body": json.dumps(body)}


async def test_every_route_is_forwarded(jp_fetch, http_server_client, jp_base_url: str, jp_auth_header: dict,
                                        upstream: Upstream, tiny_llada_dir: Path) -> None:
    models = as_json(await jp_fetch("api", "diffusion", "models"))["models"]
    assert any(m["id"] == str(tiny_llada_dir) and m["loaded"] for m in models)
    assert as_json(await jp_fetch("api", "diffusion", "models", "current"))["id"] == str(tiny_llada_dir)

    done = as_json(await jp_fetch("api", "diffusion", "generate", **post({"prompt": "x", "max_new_tokens": 8,
                                                                          "steps": 4})))
    assert done["model_used"] == str(tiny_llada_dir) and done["steps"] == 4
    filled = as_json(await jp_fetch("api", "diffusion", "infill", **post({"prefix": "a", "suffix": "b", "length": 3})))
    assert filled["tokens"] <= 3

    chunks: list[bytes] = []
    streamed = await jp_fetch("api", "diffusion", "generate", "stream",
                              **post({"prompt": "x", "max_new_tokens": 8, "steps": 4}), streaming_callback=chunks.append)
    assert streamed.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(b"".join(chunks))
    steps = check_steps(events, last_step=4)
    assert [e["type"] for e in events] == ["status"] + ["step"] * len(steps) + ["complete"]
    infill_events = sse_events((await jp_fetch("api", "diffusion", "infill", "stream",
                                               **post({"prefix": "a", "suffix": "b", "length": 2}))).body)
    assert infill_events[-1]["type"] == "complete"

    assert as_json(await jp_fetch("api", "diffusion", "settings", method="PUT",
                                  body=json.dumps({"max_new_tokens": 9})))["max_new_tokens"] == 9
    assert json.loads(upstream.settings_file.read_text())["max_new_tokens"] == 9  # stored upstream
    assert as_json(await jp_fetch("api", "diffusion", "settings"))["max_new_tokens"] == 9
    assert "downloads" in as_json(await jp_fetch("api", "diffusion", "downloads"))
    assert as_json(await jp_fetch("api", "diffusion", "openapi.json"))["openapi"].startswith("3.")
    metrics = as_json(await jp_fetch("api", "diffusion", "metrics"))
    assert metrics["endpoints"]["generate/stream"]["count"] >= 1  # the upstream's own record

    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("api", "diffusion", "generate", **post({"prompt": "x", "nope": 1}))
    assert refused.value.code == 400 and json.loads(refused.value.response.body)["error_type"] == "validation"
    with pytest.raises(HTTPClientError) as missing:
        await jp_fetch("api", "diffusion", "models", "gpt-9", "download", method="POST", body="")
    assert missing.value.code == 404

    assert as_json(await jp_fetch("api", "diffusion", "models", "current", "unload", method="POST", body=""))[
        "unloaded"] == str(tiny_llada_dir)
    url = f"{jp_base_url}api/diffusion/models/{quote(str(tiny_llada_dir), safe='')}/load"
    reloaded = as_json(await http_server_client.fetch(url, method="POST", body="{}", headers=jp_auth_header))
    assert reloaded["loaded"] and reloaded["id"] == str(tiny_llada_dir)


@pytest.mark.parametrize("yipyap_traits", [{"proxy_url": "http://127.0.0.1:9/nothing"}], indirect=True)
async def test_unreachable_upstream_is_502(jp_fetch) -> None:
    for parts, kwargs in [(("models",), {}), (("generate", "stream"), post({"prompt": "x"}))]:
        with pytest.raises(HTTPClientError) as failed:
            await jp_fetch("api", "diffusion", *parts, **kwargs)
        body = json.loads(failed.value.response.body)
        assert (failed.value.code, body["error_type"], body["retryable"]) == (502, "network", True)


@pytest.fixture
def silent_upstream() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/up"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


@pytest.mark.parametrize("yipyap_traits", [{"proxy_timeout_seconds": 0.5, "keepalive_seconds": 0.2}], indirect=True)
async def test_an_upstream_that_never_answers_is_a_network_error(jp_fetch, silent_upstream: str) -> None:
    for parts, kwargs in [(("models",), {}), (("settings",), {}), (("generate", "stream"), post({"prompt": "x"}))]:
        with pytest.raises(HTTPClientError) as failed:
            await jp_fetch("api", "diffusion", *parts, **kwargs)
        body = json.loads(failed.value.response.body)
        assert (failed.value.code, body["error_type"], body["retryable"]) == (502, "network", True), parts
        assert "did not answer in time" in body["message"]


@pytest.mark.parametrize("yipyap_traits", [{"proxy_token": "not-the-upstream-token"}], indirect=True)
async def test_a_wrong_proxy_token_is_named(jp_fetch) -> None:
    for parts, kwargs in [(("models",), {}), (("generate",), post({"prompt": "x"})),
                          (("generate", "stream"), post({"prompt": "x"}))]:
        with pytest.raises(HTTPClientError) as failed:
            await jp_fetch("api", "diffusion", *parts, **kwargs)
        body = json.loads(failed.value.response.body)
        assert (failed.value.code, body["error_type"], body["retryable"]) == (502, "network", False), parts
        assert "refused the proxy token" in body["message"] and "proxy_token" in body["message"]
        assert "_xsrf" not in body["message"]


def test_shipped_config_enables_the_extension_without_importing_torch(upstream: Upstream) -> None:
    """`jupyter server extension list` (run in a fresh interpreter) finds it enabled and loads it, torch-free."""
    code = ("import sys\n"
            "from jupyter_server.extension.serverextension import ListServerExtensionsApp\n"
            "ListServerExtensionsApp.launch_instance([])\n"
            "print('torch imported:', 'torch' in sys.modules)\n")
    listed = subprocess.run([sys.executable, "-c", code], env=upstream.env, capture_output=True, text=True,
                            timeout=120, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)  # drop colours
    assert "yipyap_jupyter enabled" in output, output
    assert re.search(r"yipyap_jupyter \S+ OK", output), output
    assert "torch imported: False" in output, output
