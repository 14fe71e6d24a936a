"""Following a download to its end, as both backends do: progress, the model id, or the download's own error."""

from __future__ import annotations

import pytest

from yipyap_jupyter.errors import ModelUnavailableError, NetworkError
from yipyap_jupyter.kernel.downloads import follow_download
from yipyap_jupyter.service.downloads import DownloadState


def states(*steps: tuple[str, int], error: dict | None = None) -> list[DownloadState]:
    return [DownloadState(model_id="tiny", state=state, bytes_done=done, bytes_total=100, started=0.0,
                          error=error if state == "failed" else None) for state, done in steps]


def test_progress_is_reported_until_done() -> None:
    seen, looks = [], iter(states(("downloading", 40), ("downloading", 90), ("done", 100)))
    done = follow_download(states(("downloading", 0))[0], lambda model_id: next(looks),
                           lambda got, total: seen.append((got, total)))
    assert done == "tiny" and seen == [(0, 100), (40, 100), (90, 100), (100, 100)]


@pytest.mark.parametrize(("error", "category"), [
    ({"error_type": "model_unavailable", "message": "not on the hub", "retryable": False}, ModelUnavailableError),
    (None, NetworkError),
])
def test_a_failed_download_raises_its_own_category(error: dict | None, category: type) -> None:
    looks = iter(states(("failed", 10), error=error))
    with pytest.raises(category):
        follow_download(states(("downloading", 0))[0], lambda model_id: next(looks))
