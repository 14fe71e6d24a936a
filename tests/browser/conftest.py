"""One JupyterLab server and one headless Chromium page for the module; a screenshot of every failure.

Lab runs on 127.0.0.1 with its own config, data and runtime dirs, a token, an offline
Hugging Face cache and a private settings file; the kernels it starts import this
checkout. Chromium is Debian's (`/usr/bin/chromium`): playwright never downloads a browser.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from held_network import HeldChild

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "browser-test.ipynb"
#: An empty notebook with the python3 kernel, so Lab does not ask which kernel to start.
EMPTY_NOTEBOOK = """{
 "cells": [{"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [], "source": []}],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4, "nbformat_minor": 5}"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Without Chromium the browser tests skip; the hook sees the whole session's items, so only theirs."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: `apt-get install -y chromium` (what .ci/run does) to run the browser tests"
        for item in items:
            if item.path.is_relative_to(Path(__file__).parent):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    if report.when == "call":
        item.failed_call = report.failed  # type: ignore[attr-defined]
    return report


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> HeldChild:
    """The gate of the kernel's network (open unless a test holds it)."""
    return HeldChild(tmp_path_factory.mktemp("gate"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, gate: HeldChild) -> Iterator[str]:
    """A running JupyterLab whose kernels' networks pass `gate`; yields the URL of a fresh notebook, token included."""
    home = tmp_path_factory.mktemp("lab")
    root = home / "root"
    root.mkdir()
    (root / NOTEBOOK).write_text(EMPTY_NOTEBOOK, encoding="utf-8")
    news = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}', encoding="utf-8")
    env = gate.env({
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "YIPYAP_SETTINGS_PATH": str(home / "settings.json"),
        "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(home / "hf"), "OMP_NUM_THREADS": "1",
    })
    token, port = secrets.token_hex(16), free_port()
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               # the kernel runs the model itself (local backend): this module is about what the notebook shows
               "--ServerApp.jpserver_extensions={'yipyap_jupyter': False}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log = home / "lab.log"
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        deadline = time.monotonic() + 120
        while "is running at" not in log.read_text() and "http://127.0.0.1" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def page(lab: str):
    """One Chromium page showing the notebook, with its kernel idle."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.console_errors = []  # type: ignore[attr-defined]
        page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
        page.goto(lab)
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
        # the kernel is connected once the status bar names it as idle
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
        yield page
        browser.close()


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest, page) -> Iterator[None]:
    yield
    if getattr(request.node, "failed_call", False):
        path = Path(tempfile.mkdtemp(prefix="yipyap-browser-")) / f"{request.node.name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot of the failure: {path}")
