"""A client-disconnect flag the IOLoop can set without importing torch.

The engine's `CancelToken` lives in a module that imports torch; importing it on
the IOLoop would stall every request while torch loads. The worker thread makes
the real token (`engine_token`), and `cancel` reaches it whichever happens first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.samplers.base import CancelToken


class Disconnect:
    """Set by the handler when its client goes away; read by the engine through `engine_token()`."""

    def __init__(self) -> None:
        self.closed = False
        self._token: CancelToken | None = None

    def cancel(self) -> None:
        self.closed = True
        if self._token is not None:
            self._token.cancel()

    def engine_token(self) -> CancelToken:
        """Call on the worker thread: the token to hand to the service (already cancelled if the client left)."""
        from ..engine.samplers.base import CancelToken

        self._token = CancelToken()
        if self.closed:
            self._token.cancel()
        return self._token
