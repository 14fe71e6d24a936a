"""Loggers that redact at the source, and the two log files: `structured.log` (JSON lines) and `backend.log`.

`get_logger` attaches the redaction and correlation filters to the logger itself, so
records are clean before any handler (ours, Jupyter's, pytest's) sees them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from .correlation import CorrelationFilter
from .redaction import RedactionFilter

ROOT_LOGGER = "yipyap_jupyter"
STRUCTURED_LOG = "structured.log"
BACKEND_LOG = "backend.log"

_FILTERS: tuple[logging.Filter, ...] = (CorrelationFilter(), RedactionFilter())


def get_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` with correlation ids stamped and sensitive texts redacted."""
    logger = logging.getLogger(name)
    for f in _FILTERS:
        if f not in logger.filters:
            logger.addFilter(f)
    return logger


def configure_log_files(log_dir: Path | str, level: int = logging.INFO) -> list[logging.Handler]:
    """Write `structured.log` (JSON lines) and `backend.log` (classic lines) under `log_dir`.

    Replaces handlers from an earlier call, so a restarted extension does not log twice.
    Returns the handlers (the server closes them on stop).
    """
    directory = Path(log_dir)
    directory.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(ROOT_LOGGER)
    remove_log_files()
    structured = logging.FileHandler(directory / STRUCTURED_LOG, encoding="utf-8")
    structured.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            rename_fields={"asctime": "timestamp", "levelname": "level", "name": "logger"},
            reserved_attrs=[*JsonFormatter().reserved_attrs, "yipyap_redacted"],
        )
    )
    backend = logging.FileHandler(directory / BACKEND_LOG, encoding="utf-8")
    backend.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"))
    handlers: list[logging.Handler] = [structured, backend]
    for handler in handlers:
        handler.yipyap_log_file = True  # type: ignore[attr-defined]
        for f in _FILTERS:
            handler.addFilter(f)
        logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handlers


def remove_log_files() -> None:
    """Detach and close the handlers `configure_log_files` added."""
    logger = logging.getLogger(ROOT_LOGGER)
    for handler in list(logger.handlers):
        if getattr(handler, "yipyap_log_file", False):
            logger.removeHandler(handler)
            handler.close()
