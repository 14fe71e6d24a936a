"""Finding the kernel's Jupyter server from runtime files and the process tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yipyap_jupyter.kernel.discovery import (
    SERVER_TOKEN_ENV,
    SERVER_URL_ENV,
    ServerInfo,
    ancestor_pids,
    find_server,
    running_servers,
)


def runtime_file(directory: Path, pid: int, **fields: object) -> dict:
    info = {"base_url": "/lab/", "hostname": "localhost", "password": False, "pid": pid, "port": 8899,
            "root_dir": "/", "secure": False, "sock": "", "token": "secret", "url": "http://localhost:8899/lab/",
            "version": "2.21.1", **fields}
    (directory / f"jpserver-{pid}.json").write_text(json.dumps(info))
    return info


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture(autouse=True)
def no_explicit_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (SERVER_URL_ENV, SERVER_TOKEN_ENV, "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)


def test_ancestors_start_with_the_launcher_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    # a child of this process, whose parent is known however pytest itself was started (even orphaned, under nohup)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert ancestor_pids(child.pid)[0] == os.getpid()
        monkeypatch.setenv("JPY_PARENT_PID", "4242")
        assert ancestor_pids(child.pid)[:2] == [4242, os.getpid()]
    finally:
        child.kill()
        child.wait(timeout=10)


def test_finds_the_server_we_descend_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = os.getpid()  # alive and, named as the kernel's launcher, our first ancestor however pytest started
    monkeypatch.setenv("JPY_PARENT_PID", str(launcher))
    runtime_file(tmp_path, dead_pid(), url="http://localhost:1/", token="stale")
    runtime_file(tmp_path, 1, url="http://localhost:2/", token="init")  # alive, but not our ancestor
    runtime_file(tmp_path, launcher)
    (tmp_path / "jpserver-broken.json").write_text("{not json")
    assert len(running_servers(tmp_path)) == 2
    server = find_server(tmp_path)
    assert server == ServerInfo(url="http://localhost:8899/lab/", token="secret", pid=launcher)
    assert server.api_url == "http://localhost:8899/lab/api/diffusion"
    assert "secret" not in repr(server)


def test_no_server_when_the_kernel_runs_alone(tmp_path: Path) -> None:
    runtime_file(tmp_path, 1)
    assert find_server(tmp_path) is None


def test_launcher_pid_and_unix_sockets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_PARENT_PID", "1")
    runtime_file(tmp_path, 1, sock="/tmp/jupyter.sock", url="http+unix://%2Ftmp%2Fjupyter.sock/lab/")
    server = find_server(tmp_path)
    assert (server.url, server.sock, server.token) == ("http://localhost/lab/", "/tmp/jupyter.sock", "secret")


def test_environment_names_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SERVER_URL_ENV, "http://example.test:9000/base")
    monkeypatch.setenv(SERVER_TOKEN_ENV, "abc")
    assert find_server(tmp_path) == ServerInfo(url="http://example.test:9000/base/", token="abc")
