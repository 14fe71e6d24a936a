"""Schemathesis over the server's own `openapi.json`: generated requests never meet a server error.

A real `jupyter server` with the extension runs in a subprocess on loopback. Its
document is fetched from it and narrowed so the generated generations stay tiny
(a few tokens, short texts) and the run stays short; every other rule is the
document's own. Each answer must not be a 5xx and must conform to the document
(status code, content type, body schema).

The run is the same whichever tests ran before it in this process. Hypothesis mixes into its
draws the literals of every "local" module imported so far (`hypothesis.internal.constants_ast`),
so the requests generated here used to depend on which package modules earlier tests had
imported: `~x` as a model id (a 500 then) came up only after `test_server_proxy.py` had run.
`hypothesis_of_its_own` pins that pool to nothing and keeps Hypothesis's files in a temporary
directory rather than `.hypothesis/` in the checkout. Every input a run has ever found is an
explicit example (`FOUND`), tried first in every run.
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
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.internal.conjecture import providers
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
#: A model id longer than a file name may be, and one naming an unknown user's home: both were 500s.
ODD_MODEL_IDS = ["x" * 300, "~x"]
#: Inputs that runs have found, and refusals beside them, as (method, path) -> requests tried before the generated ones.
FOUND: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("post", "/models/{model_id}/load"): [{"path_parameters": {"model_id": name}, "body": {}} for name in ODD_MODEL_IDS],
    ("post", "/models/{model_id}/download"): [{"path_parameters": {"model_id": name}} for name in ODD_MODEL_IDS],
    ("post", "/generate"): [
        *({"body": {"prompt": "x", "model": name}} for name in ODD_MODEL_IDS),
        # classifier-free guidance made NaN confidences where the banned tokens' logits are -inf
        {"body": {"prompt": "the cat", "max_new_tokens": 8, "steps": 4, "cfg_scale": 4.0}},
        {"body": {"prompt": "x", "temperature": 1e-300}},  # too small to divide by
    ],
    ("post", "/generate/stream"): [
        *({"body": {"prompt": "x", "model": name}} for name in ODD_MODEL_IDS),
        # refused for its content: 400 before any frame, as documented
        {"body": {"prompt": "x", "max_new_tokens": 8, "block_length": 3}},
        {"body": {"prompt": "x", "temperature": 1e-300}},
    ],
    ("post", "/infill/stream"): [{"body": {"prefix": "x", "max_new_tokens": 8, "block_length": 3, "variable": False}}],
}


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


#: Environment variables that point at state (settings, caches, Jupyter dirs): the server gets its own.
OWN_STATE = ("YIPYAP_", "HF_", "HUGGINGFACE_", "JUPYTER_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_llada_dir: Path) -> Iterator[tuple[str, str]]:
    """A `jupyter server` with the extension and the tiny test checkpoint; yields (API URL, token)."""
    home = tmp_path_factory.mktemp("fuzzed")
    inherited = {name: value for name, value in os.environ.items() if not name.startswith(OWN_STATE)}
    env = {**inherited, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
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


@pytest.fixture
def hypothesis_of_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Hypothesis draws from no literals of imported modules, and keeps its files out of the checkout."""
    monkeypatch.setattr(providers, "_get_local_constants", providers.Constants)
    providers.CONSTANTS_CACHE.cache.clear()  # pools computed before hold the earlier literals
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    try:
        yield
    finally:
        set_hypothesis_home_dir(None)
        providers.CONSTANTS_CACHE.cache.clear()


def fuzz(operation: Any, url: str, auth: dict[str, str]) -> None:
    """The found inputs and EXAMPLES generated requests of one operation, each answer checked."""

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        note(f"{operation.method.upper()} {operation.path}")
        case.call_and_validate(base_url=url, headers=auth, checks=CHECKS, timeout=60)

    for found in FOUND.get((operation.method, operation.path), []):
        call = example(case=operation.Case(media_type="application/json", **found))(call)
    call()


@pytest.mark.usefixtures("hypothesis_of_its_own")
def test_generated_requests_never_meet_a_server_error(served: tuple[str, str]) -> None:
    url, token = served
    auth = {"Authorization": f"token {token}"}
    document = narrowed(httpx.get(f"{url}/openapi.json", headers=auth).json())
    operations = [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
    assert set(FOUND) <= {(operation.method, operation.path) for operation in operations}
    for operation in operations:
        fuzz(operation, url, auth)
