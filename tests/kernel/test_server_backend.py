"""The server backend against a real `jupyter server` running the extension (found through its runtime file)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from held_network import HeldChild

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.errors import (
    GenerationCancelled,
    ModelUnavailableError,
    NetworkError,
    ValidationError,
)
from yipyap_jupyter.kernel.client import DiffusionClient
from yipyap_jupyter.kernel.discovery import ServerInfo, find_server, running_servers
from yipyap_jupyter.kernel.server_backend import ServerBackend
from yipyap_jupyter.settings import SettingsStore

REPO = Path(__file__).resolve().parents[2]
REQUEST = {"max_new_tokens": 8, "steps": 4, "seed": 11}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> HeldChild:
    """The gate of the server's network (open unless a test holds it)."""
    return HeldChild(tmp_path_factory.mktemp("gate"))


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory, tiny_llada_dir: Path, gate: HeldChild):
    """`jupyter server` with the extension, the test checkpoint as its default model, and its own dirs."""
    home = tmp_path_factory.mktemp("jupyter")
    runtime = home / "runtime"
    env = gate.env({
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_CONFIG_DIR": str(home / "config"), "YIPYAP_SETTINGS_PATH": str(home / "settings.json"),
        "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(home / "hf"), "OMP_NUM_THREADS": "1",
    })
    token = secrets.token_hex(16)
    log = home / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={free_port()}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={home}", "--ServerApp.base_url=/base/", f"--IdentityProvider.token={token}",
         "--ServerApp.jpserver_extensions={'yipyap_jupyter': True}",
         f"--DiffusionLLMApp.default_model={tiny_llada_dir}", "--DiffusionLLMApp.rate_limit_per_minute=0",
         "--DiffusionLLMApp.preload=True"],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )
    try:
        deadline = time.monotonic() + 120
        while not (runtime.exists() and running_servers(runtime)):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"jupyter server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        server = ServerInfo.from_runtime(running_servers(runtime)[0])
        backend = ServerBackend(server)
        while not backend.available():
            assert time.monotonic() < deadline, "the extension never answered"
            time.sleep(0.2)
        while backend.current() is None:  # the preload, which the tests expect done
            assert time.monotonic() < deadline, f"the default model never loaded:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield server, runtime, home
    finally:
        process.kill()  # a throwaway server: nothing in its temporary dirs needs a clean shutdown
        process.wait(30)


@pytest.fixture(scope="module")
def remote(jupyter) -> DiffusionClient:
    return DiffusionClient("server", server=jupyter[0])


def test_both_backends_yield_identical_events(remote: DiffusionClient, client: DiffusionClient, tiny_llada_dir) -> None:
    client.load(str(tiny_llada_dir), "cpu")
    remote.load(str(tiny_llada_dir), "cpu")
    for stream in ("stream_generate", "stream_infill"):
        args = ("once upon a time",) if stream == "stream_generate" else ("def f ( x ) :", "return x")
        local = list(getattr(client, stream)(*args, **REQUEST))
        served = list(getattr(remote, stream)(*args, **REQUEST))
        timeless = lambda e: e.model_dump(exclude={"generation_time"})
        assert [e.type for e in local] == ["status", "step", "step", "step", "step", "complete"]
        assert [e.type for e in served if e.type != "step"] == ["status", "complete"]
        assert timeless(served[0]) == timeless(local[0]) and timeless(served[-1]) == timeless(local[-1])
        # the server may merge steps that queue up while it writes: texts concatenate, the last canvas is kept
        served_steps, local_steps = [e for e in served if e.type == "step"], local[1:-1]
        assert "".join(e.text for e in served_steps) == "".join(e.text for e in local_steps)
        assert timeless(served_steps[-1]) == {**timeless(local_steps[-1]), "text": served_steps[-1].text,
                                              "changed": served_steps[-1].changed}


def test_models_settings_and_errors_over_http(remote: DiffusionClient, jupyter, tiny_llada_dir) -> None:
    assert remote.backend.name == "server"
    assert remote.current().id == str(tiny_llada_dir)
    assert {"tiny", "llada-8b-instruct", str(tiny_llada_dir)} <= {m.id for m in remote.models()}
    remote.unload()
    assert remote.current() is None
    assert remote.generate("the cat", **REQUEST).model == str(tiny_llada_dir)  # the server loads its default
    with pytest.raises(ModelUnavailableError):
        remote.load("no-such-model")
    with pytest.raises(ValidationError, match="max_new_tokens"):
        remote.generate("the cat", max_new_tokens=0)
    assert remote.update_settings(max_new_tokens=20, auto_trim=False).max_new_tokens == 20
    assert SettingsStore(jupyter[2] / "settings.json").load().auto_trim is False
    with pytest.raises(ValidationError):
        remote.update_settings(max_new_tokens=5000)
    assert remote.settings().max_new_tokens == 20
    remote.update_settings(max_new_tokens=64, auto_trim=True)
    with pytest.raises(NetworkError, match="refused this kernel's token"):
        ServerBackend(ServerInfo(url=jupyter[0].url, token="wrong")).models()


def cancelled_streams(server: ServerInfo) -> int:
    """How many generation streams the server has recorded as cancelled (its metrics, newest 100)."""
    metrics = httpx.get(f"{server.api_url}/metrics", params={"recent": 100}, timeout=30,
                        headers={"Authorization": f"token {server.token}"}).raise_for_status().json()
    return sum(r["endpoint"] == "generate/stream" and r["error_type"] == "cancelled" for r in metrics["recent"])


def test_cancel_closes_the_stream_and_the_server_stays_usable(
    remote: DiffusionClient, jupyter, gate: HeldChild, tiny_llada_dir: Path
) -> None:
    cancel = CancelToken()
    first_step = threading.Event()
    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            for event in remote.stream_generate("the cat", cancel=cancel, max_new_tokens=448, steps=448, seed=1):
                if event.type == "step":
                    first_step.set()
        except BaseException as error:
            outcome.append(error)

    remote.load(str(tiny_llada_dir), "cpu")  # loaded before the gate closes: a load's check pass is no step
    cancelled_before = cancelled_streams(jupyter[0])
    reader = threading.Thread(target=consume)
    gate.hold(free=1)  # step 1 goes through, step 2 waits: the server is generating when the kernel cancels
    try:
        reader.start()
        assert first_step.wait(120)
        gate.wait_held(2)
        cancel.cancel()
        reader.join(120)
        assert not reader.is_alive() and isinstance(outcome[0], GenerationCancelled)
        # the server sees the connection close and stops, while its steps go one at a time
        gate.step_until(lambda: cancelled_streams(jupyter[0]) > cancelled_before)
    finally:
        gate.open()
    stopped_at = gate.passes
    assert remote.generate("the dog", **REQUEST).steps == 4
    assert gate.passes == stopped_at + 4  # no pass of the cancelled generation came after it stopped


def test_auto_finds_the_server_through_its_runtime_file(jupyter, monkeypatch: pytest.MonkeyPatch) -> None:
    server, runtime, _ = jupyter
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("JPY_PARENT_PID", str(server.pid))  # as if the server had launched this kernel
    assert find_server() == server
    assert DiffusionClient("auto").backend.name == "server"
    monkeypatch.delenv("JPY_PARENT_PID")
    assert find_server() is None
    assert DiffusionClient("auto").backend.name == "local"
    with pytest.raises(NetworkError, match="no Jupyter server found"):
        DiffusionClient("server").models()
    dead = ServerInfo(url=f"http://127.0.0.1:{free_port()}/", token="x")
    assert DiffusionClient("auto", server=dead).backend.name == "local"


@pytest.mark.parametrize("bad", [{"temperature": float("inf")}, {"temperature": float("nan")}, {"steps": True},
                                 {"temperature": 1e-300}, {"colour": "red"}])
def test_requests_are_checked_before_they_are_sent(remote: DiffusionClient, bad: dict) -> None:
    with pytest.raises(ValidationError):
        remote.generate("the cat", **{**REQUEST, **bad})
    with pytest.raises(ValidationError):
        remote.infill("def f", "return x", **{**REQUEST, **bad})
    with pytest.raises(ValidationError, match="finite"):
        remote.update_settings(request_timeout=float("inf"))


def test_a_refused_token_is_an_error_never_the_local_backend(jupyter) -> None:
    server = jupyter[0]
    for token, says in (("wrong", "refused this kernel's token"), ("", "without a token")):
        stranger = ServerInfo(url=server.url, token=token, pid=server.pid)
        for backend in ("auto", "server"):
            with pytest.raises(NetworkError, match=says) as refused:
                DiffusionClient(backend, server=stranger).models()
            assert 'DiffusionClient(backend="local")' in refused.value.message and not refused.value.retryable
    assert DiffusionClient("local").backend.name == "local"  # the way out the message names
