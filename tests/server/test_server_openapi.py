"""The OpenAPI document: valid OpenAPI 3, served, committed, and covering every route."""

from __future__ import annotations

import json
import re
from pathlib import Path

from openapi_spec_validator import validate
from server_helpers import as_json

from yipyap_jupyter.server import openapi
from yipyap_jupyter.server.routes import API, embedded_routes

COMMITTED = Path(openapi.__file__).with_name("openapi.json")


def test_document_is_valid_openapi_3() -> None:
    validate(openapi.openapi_document())


def test_committed_copy_is_current() -> None:
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == openapi.openapi_document()


def test_every_route_is_documented() -> None:
    documented = {re.sub(r"\{(\w+)\}", r"(?P<\1>.+)", path) for path in openapi.openapi_document()["paths"]}
    routes = {pattern.removeprefix(API) for pattern, _, _ in embedded_routes()}
    assert routes - {"/.*"} == documented  # the catch-all answers unknown paths with a 404


async def test_served_document(jp_fetch) -> None:
    assert as_json(await jp_fetch("api", "diffusion", "openapi.json")) == openapi.openapi_document()

