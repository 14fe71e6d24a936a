"""Turn pydantic validation failures into our `ValidationError` with a safe message.

The message names fields and rules only, never the offending value: a value may be
a prompt, and prompts never reach an error body or a log line.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from ..errors import ValidationError

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)


def describe(error: pydantic.ValidationError) -> str:
    """One line per failed rule, `field: rule`, or the rule alone when it is about the whole body.

    The input value is left out, and so is pydantic's "Value error, " before our own messages.
    """
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        location = ".".join(str(part) for part in item["loc"])
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request"


def validate(model: type[ModelT], data: Any) -> ModelT:
    """`model.model_validate(data)`, raising `ValidationError` instead of pydantic's error."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise ValidationError(f"expected a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise ValidationError(describe(error)) from None
