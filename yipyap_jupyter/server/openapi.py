"""The OpenAPI 3 description of `/api/diffusion`, built from the same pydantic models the routes use.

`python -m yipyap_jupyter.server.openapi` prints it; `openapi.json` next to this file
is that output, kept in the repository for readers (a test keeps the two equal).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from ..engine.registry import ModelInfo
from ..service.downloads import DownloadState
from ..service.events import CompleteEvent, ErrorEvent, StatusEvent, StepEvent
from ..service.schemas import GenerateRequest, InfillRequest, LoadRequest
from ..settings import UserSettings

PREFIX = "/api/diffusion"
_REF = "#/components/schemas/{model}"

_MODELS: list[tuple[type[BaseModel], str]] = [
    (GenerateRequest, "validation"), (InfillRequest, "validation"), (LoadRequest, "validation"),
    (UserSettings, "serialization"), (ModelInfo, "serialization"), (DownloadState, "serialization"),
    (StatusEvent, "serialization"), (StepEvent, "serialization"), (CompleteEvent, "serialization"),
    (ErrorEvent, "serialization"),
]


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": _REF.format(model=model if isinstance(model, str) else model.__name__)}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {400: "validation", 403: "not authenticated", 404: "model_unavailable (unknown model, not cached)",
               409: "model_unavailable (no model loaded)", 429: "network (rate limited; see Retry-After)",
               500: "model_loading or generation", 502: "network (proxy upstream unreachable)", 504: "timeout"}
    return {str(code): _json(_ref("ErrorBody"), meaning[code]) for code in codes}


def _operation(summary: str, ok: dict[str, Any], *errors: int, body: dict[str, Any] | None = None,
               status: int = 200, model_id: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {str(status): ok, **_errors(403, *errors)}}
    if body is not None:
        operation["requestBody"] = body
    if model_id:
        operation["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"},
                                    "description": "a known model id, a hub repo id, or a local checkpoint path"}]
    return operation


_SSE = {
    "description": "Server-Sent Events: one `data: <event JSON>` frame per event, `: keep-alive` comments between;"
                   " status first, then steps, then exactly one complete or error.",
    "headers": {"X-Correlation-ID": {"schema": {"type": "string"}}},
    "content": {"text/event-stream": {"schema": {"oneOf": [_ref(StatusEvent), _ref(StepEvent), _ref(CompleteEvent),
                                                           _ref(ErrorEvent)]}}},
}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document (built once)."""
    _, definitions = models_json_schema(_MODELS, ref_template=_REF)
    schemas = dict(definitions["$defs"])
    schemas["ErrorBody"] = {
        "type": "object", "required": ["error_type", "message", "retryable"],
        "properties": {"error_type": {"type": "string", "enum": ["validation", "model_unavailable", "model_loading",
                                                                  "timeout", "generation", "network"]},
                       "message": {"type": "string"}, "retryable": {"type": "boolean"}},
    }
    complete = {"allOf": [_ref(CompleteEvent)], "description": "the complete event's fields"}
    paths = {
        "/models": {"get": _operation("List known models with cache and load state", _json(
            {"type": "object", "properties": {"models": {"type": "array", "items": _ref(ModelInfo)}}}))},
        "/models/{model_id}/load": {"post": _operation(
            "Load or switch the resident model", _json(_ref(ModelInfo)), 400, 404, 500,
            body=_body(LoadRequest, required=False), model_id=True)},
        "/models/current": {"get": _operation("The resident model, or {\"loaded\": false}", _json(
            {"oneOf": [_ref(ModelInfo), {"type": "object", "properties": {"loaded": {"const": False}}}]}))},
        "/models/current/unload": {"post": _operation("Free the resident model", _json(
            {"type": "object", "properties": {"loaded": {"const": False},
                                              "unloaded": {"type": ["string", "null"]}}}))},
        "/generate": {"post": _operation("Generate a continuation", _json(complete), 400, 404, 409, 500, 504,
                                         body=_body(GenerateRequest))},
        "/generate/stream": {"post": _operation("Generate a continuation, streamed", _SSE, 400, 429,
                                                body=_body(GenerateRequest))},
        "/infill": {"post": _operation("Fill between a prefix and a suffix", _json(complete), 400, 404, 409, 500, 504,
                                       body=_body(InfillRequest))},
        "/infill/stream": {"post": _operation("Fill between a prefix and a suffix, streamed", _SSE, 400, 429,
                                              body=_body(InfillRequest))},
        "/settings": {
            "get": _operation("The persisted user settings", _json(_ref(UserSettings))),
            "put": _operation("Change some settings (validated; unknown fields rejected)", _json(_ref(UserSettings)),
                              400, body={"required": True, "content": {"application/json": {"schema": {
                                  "type": "object", "description": "any subset of UserSettings"}}}}),
        },
        "/downloads": {"get": _operation("Cache state and downloads with byte progress", _json(
            {"type": "object", "properties": {"models": {"type": "array", "items": {"type": "object"}},
                                              "downloads": {"type": "array", "items": _ref(DownloadState)}}}))},
        "/models/{model_id}/download": {"post": _operation(
            "Start downloading a known model in the background", _json(_ref(DownloadState), "Accepted"), 404,
            status=202, model_id=True)},
        "/metrics": {"get": _operation("Request and stream durations from the metrics DB", _json({"type": "object"}),
                                       400)},
        "/openapi.json": {"get": _operation("This document", _json({"type": "object"}))},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "yipyap-jupyter diffusion API", "version": __version__,
                 "description": "Diffusion language models on a Jupyter server. Paths are relative to the server's"
                                " base_url. Authenticate as for any Jupyter API (Authorization: token <TOKEN>,"
                                " or the session cookie plus XSRF on POST/PUT)."},
        "servers": [{"url": PREFIX}],
        "security": [{"jupyterToken": []}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "jupyterToken": {"type": "apiKey", "in": "header", "name": "Authorization",
                             "description": "`token <Jupyter server token>`"}}},
    }


if __name__ == "__main__":
    print(json.dumps(openapi_document(), indent=2, ensure_ascii=False))
