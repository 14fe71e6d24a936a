"""Request bodies, as every front end of the API takes them, free of any web framework.

What a request body may be (size, nesting) and how it is parsed. The Jupyter extension's
handlers and the Ray Serve ingress (`yipyap_jupyter.serve`) both use these (and both answer
failures through `errors.wire_error`), so the two answer alike.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import BodyTooLargeError, ValidationError
from ..service.redaction import register_sensitive

#: Largest request body accepted, in bytes: two texts of `MAX_TEXT_CHARS`, every character escaped, fit.
MAX_BODY_BYTES = 1 << 20
#: Deepest JSON nesting accepted; our bodies are flat objects (depth 1).
MAX_JSON_DEPTH = 16


def json_depth(data: Any) -> int:
    """How deeply `data` nests lists and objects (a scalar is 0), counted without recursion up to one past the limit."""
    deepest, pending = 0, [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                pending.extend((item, depth) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def parse_body(raw: bytes) -> Any:
    """The parsed body (`{}` when empty), bounded in size and depth; its texts are registered for redaction.

    Raises:
        ValidationError: not JSON, nested too deeply, or (`BodyTooLargeError`) too large.
    """
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationError("the request body is not valid JSON") from None
    except RecursionError:
        data = None  # nested far deeper than the limit
    if data is None or json_depth(data) > MAX_JSON_DEPTH:
        raise ValidationError(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(data, dict):
        register_sensitive(str(data.get(key, "")) for key in ("prompt", "prefix", "suffix"))
    return data
