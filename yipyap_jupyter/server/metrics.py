"""An embedded SQLite record of every request and stream: endpoint, model, status, error type, duration.

No request content is stored, only what an operator needs to see load and failures.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    correlation_id TEXT,
    endpoint TEXT NOT NULL,
    method TEXT NOT NULL,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error_type TEXT,
    model TEXT,
    duration_s REAL NOT NULL
)
"""


class MetricsStore:
    """Append-only request log with a summary; safe to use from any thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5.0)
        # WAL without a sync per commit: a row costs no fsync on the IOLoop; a crash loses at most the last rows
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def record(
        self, *, endpoint: str, method: str, status: int, duration_s: float, stream: bool = False,
        error_type: str | None = None, model: str | None = None, correlation_id: str | None = None,
    ) -> None:
        """Store one finished request or stream."""
        row = (time.time() - duration_s, correlation_id, endpoint, method, int(stream), status, error_type, model,
               duration_s)
        with self._lock, self._connect() as db:
            db.execute(
                "INSERT INTO requests (started, correlation_id, endpoint, method, stream, status, error_type, model,"
                " duration_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row,
            )

    def summary(self, recent: int = 20) -> dict[str, Any]:
        """Counts, errors and durations per endpoint, plus the most recent requests."""
        with self._lock, self._connect() as db:
            db.row_factory = sqlite3.Row
            per_endpoint = db.execute(
                "SELECT endpoint, COUNT(*) AS count, SUM(status >= 400 OR error_type IS NOT NULL) AS errors,"
                " AVG(duration_s) AS mean_s, MAX(duration_s) AS max_s FROM requests GROUP BY endpoint"
                " ORDER BY endpoint"
            ).fetchall()
            latest = db.execute(
                "SELECT started, correlation_id, endpoint, method, stream, status, error_type, model, duration_s"
                " FROM requests ORDER BY id DESC LIMIT ?", (recent,),
            ).fetchall()
        endpoints = {
            row["endpoint"]: {"count": row["count"], "errors": row["errors"] or 0,
                              "mean_s": round(row["mean_s"], 4), "max_s": round(row["max_s"], 4)}
            for row in per_endpoint
        }
        return {
            "total": sum(e["count"] for e in endpoints.values()),
            "endpoints": endpoints,
            "recent": [{**dict(row), "stream": bool(row["stream"])} for row in latest],
        }
