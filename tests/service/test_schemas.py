"""Request schemas: unknown fields, ranges, empty text; messages never echo the input."""

from __future__ import annotations

import pytest

from yipyap_jupyter.errors import ValidationError
from yipyap_jupyter.service.schemas import GenerateRequest, InfillRequest, LoadRequest
from yipyap_jupyter.service.validation import validate

SECRET = "CANARY-schemas-7f3a"


@pytest.mark.parametrize("body, field", [
    ({"prompt": "  \n"}, "empty"),
    ({"prompt": SECRET, "unknown": 1}, "unknown"),
    ({"prompt": SECRET, "steps": 0}, "steps"),
    ({"prompt": SECRET, "temperature": -1}, "temperature"),
    ({"prompt": SECRET, "remasking": "sideways"}, "remasking"),
    ({"prompt": SECRET, "top_p": 0}, "top_p"),
    ({"prompt": SECRET, "timeout": 0}, "timeout"),
    ({"prompt": 3}, "prompt"),
    ({"prompt": SECRET, "steps": True}, "steps"),
    ({"prompt": SECRET, "seed": 1.5}, "seed"),
    ({"prompt": SECRET, "temperature": float("inf")}, "temperature"),
    ({"prompt": SECRET, "temperature": float("nan")}, "temperature"),
    ({"prompt": SECRET, "temperature": 1e-300}, "temperature"),
    ({"prompt": SECRET, "cache": "all"}, "cache"),
    ({"prompt": SECRET * 10_000}, "prompt"),
])
def test_generate_rejects(body: dict, field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        validate(GenerateRequest, body)
    assert field in raised.value.message
    assert SECRET not in raised.value.message


def test_alg_and_remasking_are_separate_options() -> None:
    request = validate(GenerateRequest, {"prompt": "x", "alg": "entropy"})
    assert (request.alg, request.remasking) == ("entropy", None)
    with pytest.raises(ValidationError, match="remasking"):
        validate(GenerateRequest, {"prompt": "x", "remasking": "entropy"})


def test_given_is_what_the_caller_set() -> None:
    assert validate(GenerateRequest, {"prompt": "x", "steps": 4, "seed": None}).given() == {"prompt": "x", "steps": 4}


@pytest.mark.parametrize("body", [{"prefix": "", "suffix": " "}, {"prefix": "a", "length": 4, "variable": True},
                                  {"prefix": "a", "length": 0}, {"prefix": "def f():", "variable": True}])
def test_infill_rejects(body: dict) -> None:
    with pytest.raises(ValidationError):
        validate(InfillRequest, body)


def test_load_request_devices() -> None:
    assert validate(LoadRequest, {}).device is None
    with pytest.raises(ValidationError):
        validate(LoadRequest, {"device": "tpu"})
    with pytest.raises(ValidationError):
        validate(LoadRequest, "cpu")
