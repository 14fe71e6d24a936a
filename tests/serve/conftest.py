"""A real `yipyap-serve` (local Ray, CPU, `tiny`, two replicas) per module, and a Jupyter server proxying to it.

The application runs as its own process, started as a user would start it; it is stopped
by its own Ctrl+C shutdown, and whatever it started that outlives that is killed by pid.
Without Ray Serve installed, the test modules skip and say why.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from held_network import HeldChild
from pytest_jupyter.jupyter_server import *  # the plugin's fixtures and hooks, for this folder only
from traitlets.config import Config

import yipyap_jupyter

REPO_ROOT = Path(yipyap_jupyter.__file__).resolve().parent.parent
#: Seconds the application may take to start (Ray, three deployments, tiny loaded on two replicas) on a busy 2-core box.
START_SECONDS = 180
#: Seconds its Ctrl+C shutdown may take before what it started is killed.
STOP_SECONDS = 60


@dataclass
class ServeApp:
    url: str  # the Serve HTTP proxy, without a trailing slash (the extension's proxy_url)
    token: str
    ray_address: str
    ray_token: str  # what a process joining its Ray cluster must show
    status_line: str
    settings_file: Path
    log_dir: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc): Ray's GCS, raylet and workers under the command."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def stop(process: subprocess.Popen[Any]) -> None:
    """Ctrl+C, as a user stops it; then by pid whatever it started and did not stop."""
    started = descendants(process.pid)
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> HeldChild:
    """The gate of the replicas' networks (open unless a test holds it)."""
    return HeldChild(tmp_path_factory.mktemp("gate"))


@pytest.fixture(scope="module")
def serve_app(tmp_path_factory: pytest.TempPathFactory, gate: HeldChild) -> Iterator[ServeApp]:
    root = tmp_path_factory.mktemp("serve")
    env = gate.env({**os.environ, "JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_DATA_DIR": str(root / "data"),
           "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(root / "hf"),
           "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])})
    port, token, ray_token = free_port(), secrets.token_hex(12), secrets.token_hex(32)
    env["RAY_AUTH_TOKEN"] = ray_token  # the cluster's own token, instead of one Ray would write to ~/.ray
    settings_file = root / "settings.json"
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "yipyap_jupyter.serve", "--model", "tiny", "--replicas", "2", "--port", str(port),
         "--token", token, "--num-cpus", "2", "--cpus-per-replica", "0.5", "--settings", str(settings_file),
         "--metrics-db", str(root / "metrics.sqlite"), "--log-dir", str(root / "logs")],
        env=env, stdout=subprocess.PIPE, stderr=log, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []], daemon=True).start()
    try:
        try:
            status = lines.get(timeout=START_SECONDS)
        except queue.Empty:
            raise AssertionError(f"yipyap-serve did not start: {(root / 'serve.log').read_text()[-3000:]}") from None
        assert status.startswith("yipyap-serve: "), (status, (root / "serve.log").read_text()[-3000:])
        address = re.search(r"Ray (\S+)", status)
        assert address is not None, status
        yield ServeApp(f"http://127.0.0.1:{port}", token, address.group(1), ray_token, status.strip(), settings_file,
                       root / "logs")
    finally:
        stop(process)
        log.close()


@pytest.fixture
def jp_server_config(serve_app: ServeApp, tmp_path: Path) -> Config:
    """A Jupyter server whose extension forwards every route to the Serve application (proxy mode)."""
    traits = {"mode": "proxy", "proxy_url": serve_app.url, "proxy_token": serve_app.token,
              "rate_limit_per_minute": 0.0, "log_dir": str(tmp_path / "yipyap-logs"),
              "metrics_db": str(tmp_path / "metrics.sqlite")}
    return Config({"ServerApp": {"jpserver_extensions": {"yipyap_jupyter": True}}, "DiffusionLLMApp": traits})
