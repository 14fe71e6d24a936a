"""The OpenAPI 3 description of `/api/diffusion`, built from the same pydantic models the routes use.

The request schemas are the strict pydantic models' own (integers are integers, never
booleans); the rules pydantic checks in code (blank texts, the temperature floor,
infill's length-or-variable) are added here as JSON Schema, so a client generated
from this document sends what the server accepts. Each stream event has its own schema.

`python -m yipyap_jupyter.server.openapi` prints it; `openapi.json` next to this file
is that output, kept in the repository for readers (a test keeps the two equal).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .. import __version__
from ..errors import HTTP_STATUS_MEANINGS
from ..service.downloads import DownloadState
from ..service.events import CompleteEvent, ErrorEvent, StatusEvent, StepEvent
from ..service.schemas import MIN_TEMPERATURE, GenerateRequest, InfillRequest, LoadRequest, ModelInfo
from ..settings import UserSettings

PREFIX = "/api/diffusion"
_REF = "#/components/schemas/{model}"

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
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
    return {str(code): _json(_ref("ErrorBody"), HTTP_STATUS_MEANINGS[code]) for code in codes}


def _operation(summary: str, ok: dict[str, Any], *errors: int, body: dict[str, Any] | None = None,
               status: int = 200, model_id: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {str(status): ok, **_errors(403, *errors)}}
    if body is not None:
        operation["requestBody"] = body
    if model_id:
        operation["parameters"] = [{"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"},
                                    "description": "a known model id, a hub repo id, or a local checkpoint path"}]
    return operation


_EVENTS: dict[str, type[BaseModel]] = {
    "status": StatusEvent, "step": StepEvent, "complete": CompleteEvent, "error": ErrorEvent,
}

_SSE = {
    "description": "Server-Sent Events: one `data: <event JSON>` frame per event, `: keep-alive` comments between;"
                   " status first, then steps, then exactly one complete or error. Steps that queue up while the"
                   " client reads are merged into one frame (texts concatenated, the last canvas). A request"
                   " refused before its first event is answered with the error's status and body instead.",
    "headers": {"X-Correlation-ID": {"schema": {"type": "string"}}},
    "content": {"text/event-stream": {"schema": {
        "type": "object", "required": ["data"], "description": "one Server-Sent Event; its data is the event's JSON",
        "properties": {"data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "oneOf": [_ref(model) for model in _EVENTS.values()],
            "discriminator": {"propertyName": "type",
                              "mapping": {name: _ref(model)["$ref"] for name, model in _EVENTS.items()}},
        }}},
    }}},
}

#: Not blank: at least one character that is not whitespace.
_NOT_BLANK = {"type": "string", "pattern": r"\S"}


def _request_rules(schemas: dict[str, Any]) -> None:
    """Add the request rules that pydantic checks in validators, as JSON Schema."""
    for name in ("GenerateRequest", "InfillRequest"):
        temperature = schemas[name]["properties"]["temperature"]
        number = next(option for option in temperature["anyOf"] if option.get("type") == "number")
        temperature["anyOf"] = [{"const": 0}, {**number, "minimum": MIN_TEMPERATURE}, {"type": "null"}]
    schemas["GenerateRequest"]["properties"]["prompt"]["pattern"] = _NOT_BLANK["pattern"]
    schemas["InfillRequest"].update({
        "anyOf": [{"required": ["prefix"], "properties": {"prefix": _NOT_BLANK}},
                  {"required": ["suffix"], "properties": {"suffix": _NOT_BLANK}}],
        "description": schemas["InfillRequest"]["description"]
        + "\n\nprefix and suffix are not both blank; variable=true needs a non-blank suffix and no length.",
        "if": {"required": ["variable"], "properties": {"variable": {"const": True}}},
        "then": {"required": ["suffix"], "properties": {"suffix": _NOT_BLANK, "length": {"type": "null"}}},
    })


def _event_schemas(schemas: dict[str, Any]) -> None:
    """Every event names its type; the non-streaming answer is the complete event without it."""
    for model in _EVENTS.values():
        event = schemas[model.__name__]
        event["required"] = sorted({*event.get("required", []), *event["properties"]})
    completion = dict(schemas[CompleteEvent.__name__])
    completion["properties"] = {k: v for k, v in completion["properties"].items() if k != "type"}
    completion["required"] = [name for name in completion["required"] if name != "type"]
    completion["description"] = "The answer of /generate and /infill: the complete event's fields."
    schemas["Completion"] = completion


def _settings_change(schemas: dict[str, Any]) -> dict[str, Any]:
    """Body of PUT /settings: any subset of UserSettings."""
    settings = schemas[UserSettings.__name__]
    return {"type": "object", "additionalProperties": False, "description": "any subset of UserSettings",
            "properties": {name: {k: v for k, v in field.items() if k != "default"}
                           for name, field in settings["properties"].items()}}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document (built once)."""
    _, definitions = models_json_schema(_MODELS, ref_template=_REF)
    schemas = dict(definitions["$defs"])
    _request_rules(schemas)
    _event_schemas(schemas)
    schemas["ErrorBody"] = {
        "type": "object", "required": ["error_type", "message", "retryable"],
        "properties": {"error_type": {"type": "string", "enum": ["validation", "auth", "model_unavailable",
                                                                  "model_loading", "timeout", "generation", "network"]},
                       "message": {"type": "string"}, "retryable": {"type": "boolean"}},
    }
    complete = _ref("Completion")
    generation_errors = (400, 404, 409, 413, 429, 500, 504)
    paths = {
        "/models": {"get": _operation("List known models with cache and load state", _json(
            {"type": "object", "properties": {"models": {"type": "array", "items": _ref(ModelInfo)}}}))},
        "/models/{model_id}/load": {"post": _operation(
            "Load or switch the resident model", _json(_ref(ModelInfo)), 400, 404, 413, 500,
            body=_body(LoadRequest, required=False), model_id=True)},
        "/models/current": {"get": _operation("The resident model, or {\"loaded\": false}", _json(
            {"oneOf": [_ref(ModelInfo), {"type": "object", "properties": {"loaded": {"const": False}}}]}))},
        "/models/current/unload": {"post": _operation("Free the resident model", _json(
            {"type": "object", "properties": {"loaded": {"const": False},
                                              "unloaded": {"type": ["string", "null"]}}}))},
        "/generate": {"post": _operation("Generate a continuation", _json(complete), *generation_errors,
                                         body=_body(GenerateRequest))},
        "/generate/stream": {"post": _operation("Generate a continuation, streamed", _SSE, *generation_errors,
                                                body=_body(GenerateRequest))},
        "/infill": {"post": _operation("Fill between a prefix and a suffix", _json(complete), *generation_errors,
                                       body=_body(InfillRequest))},
        "/infill/stream": {"post": _operation("Fill between a prefix and a suffix, streamed", _SSE,
                                              *generation_errors, body=_body(InfillRequest))},
        "/settings": {
            "get": _operation("The persisted user settings", _json(_ref(UserSettings))),
            "put": _operation("Change some settings (validated; unknown fields rejected)", _json(_ref(UserSettings)),
                              400, 413, body={"required": True, "content": {"application/json": {
                                  "schema": _settings_change(schemas)}}}),
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
