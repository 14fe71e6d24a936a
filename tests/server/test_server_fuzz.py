"""Schemathesis over the server's own `openapi.json`: generated requests never meet a server error.

A real `jupyter server` with the extension runs in a subprocess on loopback. Its
document is fetched from it and narrowed so the generated generations stay tiny
(a few tokens, short texts) and the run stays short; every other rule is the
document's own. Each answer must not be a 5xx and must conform to the document
(status code, content type, body schema).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, note, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import yipyap_jupyter

REPO = Path(yipyap_jupyter.__file__).resolve().parent.parent
#: Largest token count, step count or length a generated request may ask for.
TINY = 8
#: Longest generated prompt, prefix or suffix.
SHORT_TEXT = 64
#: Generated requests per operation.
EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def narrowed(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the requests' generation sizes capped at TINY, texts at SHORT_TEXT, timeouts at 30 s."""
    def visit(node: Any, name: str = "") -> None:
        if isinstance(node, dict):
            if name in ("max_new_tokens", "steps", "block_length", "length") and "maximum" in node:
                node["maximum"] = TINY
            if name in ("prompt", "prefix", "suffix"):
                node["maxLength"] = SHORT_TEXT
            if name in ("timeout", "request_timeout") and "maximum" in node:
                node["maximum"] = 30
            for key, value in node.items():
                visit(value, key if key not in ("anyOf", "properties", "allOf", "oneOf") else name)
        elif isinstance(node, list):
            for item in node:
                visit(item, name)

    visit(document["components"]["schemas"]["GenerateRequest"])
    visit(document["components"]["schemas"]["InfillRequest"])
    visit(document["paths"]["/settings"]["put"]["requestBody"])
    return document


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_llada_dir: Path) -> Iterator[tuple[str, str]]:
    """A `jupyter server` with the extension and the tiny test checkpoint; yields (API URL, token)."""
    home = tmp_path_factory.mktemp("fuzzed")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_CONFIG_DIR": str(home / "config"), "YIPYAP_SETTINGS_PATH": str(home / "settings.json"),
           "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(home / "hf"), "OMP_NUM_THREADS": "1"}
    port, token = free_port(), secrets.token_hex(16)
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={home}",
         f"--IdentityProvider.token={token}", "--ServerApp.jpserver_extensions={'yipyap_jupyter': True}",
         f"--DiffusionLLMApp.default_model={tiny_llada_dir}", "--DiffusionLLMApp.preload=True",
         "--DiffusionLLMApp.rate_limit_per_minute=0", f"--DiffusionLLMApp.log_dir={home / 'logs'}",
         f"--DiffusionLLMApp.metrics_db={home / 'metrics.sqlite'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/api/diffusion"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (home / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/models/current", headers={"Authorization": f"token {token}"}).json().get("loaded"):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        yield url, token
    finally:
        process.kill()  # a throwaway server: nothing in its temporary dirs needs a clean shutdown
        process.wait(30)
        log.close()


def fuzz(operation: Any, url: str, auth: dict[str, str]) -> None:
    """EXAMPLES generated requests of one operation, each answer checked."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def call(case: Any) -> None:
        note(f"{operation.method.upper()} {operation.path}")
        case.call_and_validate(base_url=url, headers=auth, checks=CHECKS, timeout=60)

    call()


def test_generated_requests_never_meet_a_server_error(served: tuple[str, str]) -> None:
    url, token = served
    auth = {"Authorization": f"token {token}"}
    document = narrowed(httpx.get(f"{url}/openapi.json", headers=auth).json())
    operations = [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
    for operation in operations:
        fuzz(operation, url, auth)
