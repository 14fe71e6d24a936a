"""The route table: patterns relative to the server's base_url (the extension app prepends it)."""

from __future__ import annotations

from typing import Any

from . import handlers as h
from .proxy import ProxyHandler

API = r"/api/diffusion"

Route = tuple[str, type, dict[str, Any]]


def embedded_routes() -> list[Route]:
    """Every route, served by this server's own model; the last one answers unknown paths."""
    return [
        (rf"{API}/models", h.ModelsHandler, {}),
        (rf"{API}/models/current", h.CurrentModelHandler, {}),
        (rf"{API}/models/current/unload", h.UnloadModelHandler, {}),
        (rf"{API}/models/(?P<model_id>.+)/load", h.LoadModelHandler, {}),
        (rf"{API}/models/(?P<model_id>.+)/download", h.DownloadModelHandler, {}),
        (rf"{API}/generate", h.CompletionHandler, {"kind": "generate"}),
        (rf"{API}/generate/stream", h.StreamHandler, {"kind": "generate"}),
        (rf"{API}/infill", h.CompletionHandler, {"kind": "infill"}),
        (rf"{API}/infill/stream", h.StreamHandler, {"kind": "infill"}),
        (rf"{API}/settings", h.SettingsHandler, {}),
        (rf"{API}/downloads", h.DownloadsHandler, {}),
        (rf"{API}/metrics", h.MetricsHandler, {}),
        (rf"{API}/openapi.json", h.OpenAPIHandler, {}),
        (rf"{API}/.*", h.NotFoundHandler, {}),
    ]


def proxy_routes() -> list[Route]:
    """One catch-all route forwarding everything under the API to the upstream server."""
    return [(rf"{API}/(?P<path>.*)", ProxyHandler, {})]
