"""The jupyter-server extension app: configuration traits, shared state and routes.

Enable with `jupyter server extension enable yipyap_jupyter` (pip installs do it
through `jupyter_server_config.d/yipyap_jupyter.json`); configure as
`c.DiffusionLLMApp.<trait>` or `--DiffusionLLMApp.<trait>=...`.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Enum, Float, Integer, Unicode

from .. import __version__
from ..constants import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MODEL_ID
from ..service.correlation import in_current_context
from ..service.logs import configure_log_files, get_logger, remove_log_files
from .routes import embedded_routes, proxy_routes
from .sse import DEFAULT_FRAME_INTERVAL
from .state import SETTINGS_KEY, ExtensionState

log = get_logger(__name__)

#: Threads of the quick routes' executor (listing models, reading metrics: short, file-bound calls).
QUICK_THREADS = 4


class DiffusionLLMApp(ExtensionApp):
    """Serves `{base_url}api/diffusion`: models, generation and infilling (JSON and SSE), settings, downloads, metrics."""

    name = "yipyap_jupyter"
    description = "Diffusion language models (LLaDA, Dream, DreamOn) on the Jupyter server"
    version = __version__
    load_other_extensions = True

    diffusion_llm_enabled = Bool(True, help="Register the /api/diffusion routes; when false no route exists.").tag(config=True)
    mode = Enum(["embedded", "proxy"], "embedded",
                help="embedded: run models in this server. proxy: forward every route to proxy_url.").tag(config=True)
    proxy_url = Unicode("", help="Base URL of the upstream Jupyter server in proxy mode (with its base_url).").tag(config=True)
    proxy_token = Unicode("", help="Token for the upstream server in proxy mode.").tag(config=True)
    proxy_timeout_seconds = Float(
        30.0, help="Proxy mode: seconds a quick route may wait for the upstream; streams may be idle for two"
                   " keep-alive periods (keepalive_seconds, which should match the upstream's) plus this.",
    ).tag(config=True)
    default_model = Unicode(
        DEFAULT_MODEL_ID,
        help="Model id or checkpoint path loaded by `preload`, and on demand when a generation arrives with no model"
             " loaded; empty: such a generation fails with model_unavailable (409).",
    ).tag(config=True)
    preload = Bool(False, help="Load default_model in the background when the server starts.").tag(config=True)
    log_dir = Unicode("", help="Directory of structured.log and backend.log (default <jupyter data dir>/yipyap_jupyter/logs).").tag(config=True)
    metrics_db = Unicode("", help="SQLite metrics file (default <jupyter data dir>/yipyap_jupyter/metrics.sqlite).").tag(config=True)
    rate_limit_per_minute = Float(
        600.0, help="Generation requests (streaming or not) per minute per client (user + address) that pass validation;"
                    " 0 disables. The default stops floods, not a person: one request at a time never meets it.",
    ).tag(config=True)
    rate_limit_burst = Integer(
        60, help="Generation requests a client may make at once before the per-minute rate applies.",
    ).tag(config=True)
    max_batch_size = Integer(
        DEFAULT_MAX_BATCH_SIZE, min=1,
        help="Fixed-length generations on the loaded model decoded together, sharing each forward pass (1: one at a"
             " time). Requests that arrive while a batch runs join it at its next step.",
    ).tag(config=True)
    max_batch_tokens = Integer(
        DEFAULT_MAX_BATCH_TOKENS, min=1,
        help="Canvas positions (prompt + tokens to generate, twice under cfg) a batch holds at most: the size of its"
             " forward passes, so what bounds their memory. Lowered by itself after an out-of-memory error.",
    ).tag(config=True)
    keepalive_seconds = Float(15.0, help="Seconds of silence after which a stream sends a keep-alive comment.").tag(config=True)
    frame_interval = Float(
        DEFAULT_FRAME_INTERVAL, min=0.0,
        help="Seconds from one write of step frames to the next (0: each step as it comes). Steps that come faster"
             " go out together, each still its own frame: fewer wake-ups for client and server.",
    ).tag(config=True)
    worker_threads = Integer(
        16, help="Threads for model work (loads, generations waiting for their turn; the manager serialises them)."
                 " Quick routes have threads of their own.",
    ).tag(config=True)
    gil_switch_interval = Float(
        0.001, help="Seconds a thread may hold the GIL while others wait (sys.setswitchinterval, for the whole"
                    " server process). Generation threads run Python between torch calls; a short interval keeps"
                    " the IOLoop answering quick routes within milliseconds. 0 keeps Python's default (5 ms).",
    ).tag(config=True)

    state: ExtensionState | None = None

    def initialize_settings(self) -> None:
        if not self.diffusion_llm_enabled:
            self.log.info("yipyap_jupyter: diffusion_llm_enabled is false; no /api/diffusion routes")
            return
        if self.mode == "proxy" and not self.proxy_url:
            raise ValueError("DiffusionLLMApp.mode is 'proxy' but proxy_url is empty")
        data = Path(jupyter_data_dir()) / "yipyap_jupyter"
        log_dir = Path(self.log_dir) if self.log_dir else data / "logs"
        configure_log_files(log_dir)
        if self.gil_switch_interval > 0:
            sys.setswitchinterval(self.gil_switch_interval)
        from .metrics import MetricsStore
        from .ratelimit import RateLimiter

        executor = ThreadPoolExecutor(max_workers=max(1, self.worker_threads), thread_name_prefix="yipyap")
        quick_executor = ThreadPoolExecutor(max_workers=QUICK_THREADS, thread_name_prefix="yipyap-quick")
        service = downloads = None
        if self.mode == "embedded":
            from ..engine.runtime import DiffusionModelManager
            from ..service.service import DiffusionLLMService

            manager = DiffusionModelManager(max_batch_size=self.max_batch_size, max_batch_tokens=self.max_batch_tokens)
            service = DiffusionLLMService(manager, default_model=self.default_model or None)
            downloads = service.downloads
        self.state = ExtensionState(
            service=service, downloads=downloads,
            metrics=MetricsStore(Path(self.metrics_db) if self.metrics_db else data / "metrics.sqlite"),
            limiter=RateLimiter(self.rate_limit_per_minute, self.rate_limit_burst),
            executor=executor, quick_executor=quick_executor, keepalive_seconds=self.keepalive_seconds,
            frame_interval=self.frame_interval,
            proxy_url=self.proxy_url or None, proxy_token=self.proxy_token,
            proxy_timeout_seconds=self.proxy_timeout_seconds,
        )
        self.settings[SETTINGS_KEY] = self.state
        log.info("yipyap_jupyter started in %s mode (logs in %s)", self.mode, log_dir)
        if service is not None and self.preload and self.default_model:
            executor.submit(in_current_context(self._preload), service, self.default_model)

    def initialize_handlers(self) -> None:
        if self.state is None:
            return
        routes = embedded_routes() if self.mode == "embedded" else proxy_routes()
        self.handlers.extend(routes)

    @staticmethod
    def _preload(service: Any, model_id: str) -> None:
        try:
            info = service.load_model(model_id)
            log.info("preloaded %s on %s", info.id, info.device)
        except Exception as error:  # noqa: BLE001 - a failed preload must not stop the server; requests report it
            log.warning("preloading %s failed: %s", model_id, getattr(error, "message", type(error).__name__))

    async def stop_extension(self) -> None:
        """Stop taking work, free the model, close the log files."""
        state, self.state = self.state, None
        if state is None:
            return
        state.executor.shutdown(wait=False, cancel_futures=True)
        state.quick_executor.shutdown(wait=False, cancel_futures=True)
        if state.service is not None and state.service.current_model() is not None:
            state.service.unload_model()
        remove_log_files()
