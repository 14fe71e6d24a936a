"""What an operator chooses for a Serve application, handed to every deployment of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..constants import DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MODEL_ID
from ..server.sse import DEFAULT_FRAME_INTERVAL

#: Seconds between two reports of a replica to the board; an entry not refreshed for three of them is gone.
HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class ServeConfig:
    """The application's settings (picklable: Ray ships it to every replica).

    Args:
        token: what `Authorization: token ...` (or `Bearer ...`) must carry; never empty.
        default_model: the model of a request that names none, loaded on every replica at start.
        models_per_replica: models one replica holds at most; the least recently used one is freed first.
        settings_path: the user-settings file the ingress and the replicas share (None: the default one).
        metrics_db: the ingress's SQLite request log (None: the default under the Jupyter data dir).
        log_dir: where the ingress and every replica write `structured.log` and `backend.log`, each on its own node
            (None: `<Jupyter data dir>/yipyap_jupyter/logs`, as the extension does).
        gil_switch_interval: `sys.setswitchinterval` of every replica process, as the extension sets its server's
            (0 keeps Python's 5 ms): a replica's engine thread shares the GIL with Ray's and Serve's own threads,
            and with the default a `tiny` generation ran 10-12 % slower in a replica than in a Jupyter server.
    """

    token: str
    default_model: str = DEFAULT_MODEL_ID
    models_per_replica: int = 1
    settings_path: str | None = None
    metrics_db: str | None = None
    log_dir: str | None = None
    rate_limit_per_minute: float = 600.0
    rate_limit_burst: int = 60
    keepalive_seconds: float = 15.0
    frame_interval: float = DEFAULT_FRAME_INTERVAL
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS
    worker_threads: int = 16
    gil_switch_interval: float = 0.001
    heartbeat_seconds: float = HEARTBEAT_SECONDS


def data_dir() -> Path:
    """This node's `<Jupyter data dir>/yipyap_jupyter`: default home of the logs and the metrics DB."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "yipyap_jupyter"


def open_log_files(config: ServeConfig) -> None:
    """Write this process's records to the application's log files (lines of several processes interleave whole)."""
    from ..service.logs import configure_log_files

    configure_log_files(config.log_dir or data_dir() / "logs")
