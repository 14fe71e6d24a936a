"""The board: what each model replica holds, as the replicas last reported it.

Serve routes a request to one replica and has no call that reaches all of them, so
each replica writes its state here when it changes and at every health check; the
ingress reads the board to answer `GET /models/current` and to see which replicas a
`load` or `unload` has not reached yet. A replica that stops reporting (it died, or
Serve replaced it) drops off after three heartbeats, or at once when the ingress saw
it die mid-request.
"""

from __future__ import annotations

import time
from typing import Any


class ReplicaBoard:
    """Replica name -> its last report, with when it came."""

    def __init__(self, heartbeat_seconds: float) -> None:
        self.ttl = 3 * heartbeat_seconds
        self._reports: dict[str, tuple[float, dict[str, Any]]] = {}

    def report(self, replica: str, state: dict[str, Any]) -> None:
        """Keep `state` unless a later one of the same replica came first (reports may overtake each other)."""
        kept = self._reports.get(replica)
        if kept is None or kept[1]["sequence"] <= state["sequence"]:
            self._reports[replica] = (time.monotonic(), state)

    def forget(self, replica: str) -> None:
        self._reports.pop(replica, None)

    def replicas(self) -> list[dict[str, Any]]:
        """The live replicas' reports, by name."""
        now = time.monotonic()
        for name in [name for name, (seen, _) in self._reports.items() if now - seen > self.ttl]:
            del self._reports[name]
        return [state for _, (_, state) in sorted(self._reports.items())]
