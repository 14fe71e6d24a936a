"""The local backend: downloads go through the service's background downloads, as on the server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from checkpoints import serve_as_hub

from yipyap_jupyter.errors import ModelUnavailableError, NetworkError
from yipyap_jupyter.kernel.local_backend import LocalBackend
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(DiffusionLLMService(settings_store=SettingsStore(tmp_path / "settings.json")))


def test_a_download_reports_progress_and_ends_cached(
    backend: LocalBackend, hub_online: None, hub_cache: Path, tiny_llada_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports: list[tuple[int, int]] = []
    with serve_as_hub("GSAI-ML/LLaDA-8B-Base", tiny_llada_dir) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        info = backend.download("llada-8b-base", lambda done, total: reports.append((done, total)))
    assert info.id == "llada-8b-base" and info.cached
    total = sum(p.stat().st_size for p in tiny_llada_dir.iterdir())
    assert reports[-1] == (total, total)
    assert backend.service.downloads.state("llada-8b-base").state == "done"  # the service's own record


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_download_failures_keep_their_category(
    backend: LocalBackend, hub_online: None, hub_cache: Path, tiny_llada_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelUnavailableError):
        backend.download("no-such-model")
    with serve_as_hub("someone/else", tiny_llada_dir) as endpoint:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        with pytest.raises(ModelUnavailableError, match="GSAI-ML/LLaDA-8B-Base was not found on the hub"):
            backend.download("llada-8b-base")  # the hub answers, and has no such repository
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(NetworkError):
        backend.download("llada-8b-base")  # no hub answers at all
