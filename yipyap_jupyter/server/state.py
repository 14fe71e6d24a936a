"""What the extension's handlers share, kept in the Tornado settings under one key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..service.downloads import Downloads
from ..service.service import DiffusionLLMService
from .metrics import MetricsStore
from .ratelimit import RateLimiter
from .sse import DEFAULT_FRAME_INTERVAL

SETTINGS_KEY = "yipyap_jupyter_state"


@dataclass
class ExtensionState:
    """The service and its companions, created once when the extension starts.

    `executor` runs the calls that wait for the model (loads, unloads, generations
    waiting for their turn): the manager serialises model work, so the pool only has to
    be wide enough for waiting requests to report their queue position.
    `quick_executor` runs the blocking calls of the quick routes (models, settings,
    downloads, metrics), so they never queue behind generations.
    """

    service: DiffusionLLMService | None  # None in proxy mode
    downloads: Downloads | None  # None in proxy mode
    metrics: MetricsStore
    limiter: RateLimiter
    executor: ThreadPoolExecutor
    quick_executor: ThreadPoolExecutor
    keepalive_seconds: float = 15.0
    frame_interval: float = DEFAULT_FRAME_INTERVAL
    proxy_url: str | None = None
    proxy_token: str = ""
    proxy_timeout_seconds: float = 30.0
