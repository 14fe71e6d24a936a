"""What a client sees of a model: the engine's answer to "which models are there, and which one runs where".

The registry makes one per known model and the runtime marks the loaded one; the service
re-exports it as a wire type (`service.schemas.ModelInfo`).
"""

from __future__ import annotations

from pydantic import BaseModel


class ModelInfo(BaseModel):
    """What a client sees of a model: identity, cache state and, when loaded, where it runs."""

    id: str
    name: str
    family: str
    repo_id: str | None = None
    capabilities: list[str]
    parameters: int | None = None
    size_on_disk: int = 0
    cached: bool = False
    path: str | None = None
    loaded: bool = False
    device: str | None = None
    dtype: str | None = None
    fallback: str | None = None
    context_length: int | None = None  # most tokens (text + generation) one request may hold
