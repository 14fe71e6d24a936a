"""The one error map: every failure's HTTP status, body and headers, and back from the wire to our exception."""

from __future__ import annotations

import pytest

from yipyap_jupyter import errors
from yipyap_jupyter.errors import (
    AuthenticationError,
    BodyTooLargeError,
    DiffusionError,
    GenerationError,
    GenerationTimeoutError,
    ModelLoadingError,
    ModelUnavailableError,
    NetworkError,
    NoModelLoadedError,
    RateLimitedError,
    ValidationError,
    error_for_status,
    error_from_answer,
    error_from_body,
    wire_error,
)

#: The error table of the API (README "HTTP API"): each class, its status and its category.
TABLE = [
    (ValidationError("bad"), 400, "validation"),
    (BodyTooLargeError("big"), 413, "validation"),
    (AuthenticationError("who"), 403, "auth"),
    (ModelUnavailableError("unknown"), 404, "model_unavailable"),
    (NoModelLoadedError("none"), 409, "model_unavailable"),
    (ModelLoadingError("corrupt"), 500, "model_loading"),
    (GenerationError("failed"), 500, "generation"),
    (GenerationTimeoutError("late"), 504, "timeout"),
    (NetworkError("away"), 502, "network"),
    (RateLimitedError("slow down", retry_after=2.2), 429, "network"),
]


@pytest.mark.parametrize(("error", "status", "error_type"), TABLE, ids=lambda x: type(x).__name__)
def test_each_error_has_its_status_and_category(error: DiffusionError, status: int, error_type: str) -> None:
    answer = wire_error(error)
    assert answer.status == status
    assert answer.body == {"error_type": error_type, "message": error.message, "retryable": error.retryable}


def test_a_rate_limit_says_when_to_retry_in_whole_seconds() -> None:
    assert wire_error(RateLimitedError("slow down", retry_after=2.2)).headers == {"Retry-After": "3"}
    assert wire_error(RateLimitedError("slow down", retry_after=0.1)).headers == {"Retry-After": "1"}
    assert wire_error(ValidationError("bad")).headers == {}


def test_a_bug_is_a_generation_error_without_its_text() -> None:
    answer = wire_error(KeyError("secret prompt text"))
    assert answer.status == 500 and answer.body["error_type"] == "generation" and not answer.body["retryable"]
    assert "secret" not in answer.body["message"] and "correlation id" in answer.body["message"]


@pytest.mark.parametrize(("error", "status", "error_type"), TABLE, ids=lambda x: type(x).__name__)
def test_a_body_comes_back_as_its_category(error: DiffusionError, status: int, error_type: str) -> None:
    back = error_from_body(wire_error(error).body)
    assert (back.error_type, back.message, back.retryable) == (error_type, error.message, error.retryable)
    assert isinstance(back, errors._CLASS_OF_TYPE[error_type])


def test_an_unknown_category_keeps_its_name() -> None:
    back = error_from_body({"error_type": "newer", "message": "m", "retryable": True})
    assert type(back) is DiffusionError and back.error_type == "newer" and back.retryable


def test_framework_statuses_become_our_categories() -> None:
    assert [error_for_status(status, "m").error_type for status in (401, 403, 404, 405, 500)] == [
        "auth", "auth", "validation", "validation", "generation"]


def test_an_answer_is_its_body_or_else_its_status() -> None:
    body = {"error_type": "timeout", "message": "late", "retryable": True}
    assert isinstance(error_from_answer(504, body, None, "the server"), GenerationTimeoutError)
    assert isinstance(error_from_answer(403, body, None, "the server"), AuthenticationError)  # a refusal first
    limited = error_from_answer(429, "<html>", "4", "the server")
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 4.0
    assert limited.message == "rate limited by the server; retry in 4 s"
    foreign = error_from_answer(502, {"detail": "bad gateway"}, None, "the server", "/api/diffusion/models")
    assert type(foreign) is NetworkError and foreign.message == "the server answered HTTP 502 for /api/diffusion/models"
