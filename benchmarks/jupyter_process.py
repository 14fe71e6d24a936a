"""A real Jupyter server with the extension, in a subprocess on loopback, for the HTTP benchmarks.

Private config, data and runtime dirs under `workdir`, no rate limit, the model preloaded;
`start_server` returns once the model answers as loaded (or stops the server and exits);
`stop_server` ends it, killing it if it does not stop in time. `stream_frames` reads one SSE stream.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    model: str, workdir: Path, threads: int = 1, timeout: float = 300
) -> tuple[subprocess.Popen[bytes], str, str]:
    """(the server process, its `/api/diffusion` URL, its token); its log is `workdir/server.log`.

    Waits at most `timeout` seconds for the model to load (then stops the server and exits).
    """
    port, token = free_port(), secrets.token_hex(12)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(workdir / "config"), "JUPYTER_DATA_DIR": str(workdir / "data"),
           "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads),
           "YIPYAP_SETTINGS_PATH": str(workdir / "settings.json"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={workdir}",
               f"--IdentityProvider.token={token}", "--ServerApp.jpserver_extensions={'yipyap_jupyter': True}",
               f"--DiffusionLLMApp.default_model={model}", "--DiffusionLLMApp.preload=True",
               "--DiffusionLLMApp.rate_limit_per_minute=0", f"--DiffusionLLMApp.log_dir={workdir / 'logs'}",
               f"--DiffusionLLMApp.metrics_db={workdir / 'metrics.sqlite'}"]
    log = (workdir / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/diffusion"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"the server exited: see {workdir / 'server.log'}")
            try:
                if httpx.get(f"{url}/models/current", headers={"Authorization": f"token {token}"}).json().get("loaded"):
                    return server, url, token
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise SystemExit(f"the server did not load the model in time: see {workdir / 'server.log'}")
    except BaseException:
        stop_server(server)
        raise


def stop_server(server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Terminate the server; kill it if it has not exited within `timeout` seconds."""
    server.terminate()
    try:
        server.wait(timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def stream_frames(client: httpx.Client, url: str, body: dict, route: str = "generate/stream") -> Iterator[dict]:
    """The JSON frames of one `POST {url}/{route}` SSE stream, as they arrive (an HTTP error status raises)."""
    with client.stream("POST", f"{url}/{route}", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])
