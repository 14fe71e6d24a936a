"""Following a model download to its end, the same way for either backend.

Both backends start the service's background download and look at its state until it
ends: the local backend asks its own service, the server backend polls `/downloads`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import NetworkError, error_from_body

if TYPE_CHECKING:
    from ..service.downloads import DownloadState


def follow_download(state: DownloadState, look: Callable[[str], DownloadState],
                    progress: Callable[[int, int], None] | None = None) -> str:
    """Report `progress(done, total)` and call `look(model_id)` for the next state until the download ends.

    Returns the model id once it is done.

    Raises:
        DiffusionError: the download failed (its own error, rebuilt from its error object).
    """
    while True:
        if progress is not None and state.bytes_total:
            progress(state.bytes_done, state.bytes_total)
        if state.state == "failed":
            raise error_from_body(state.error) if state.error else NetworkError(f"the download of {state.model_id} failed")
        if state.state == "done":
            return state.model_id
        state = look(state.model_id)
