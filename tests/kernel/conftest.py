"""Kernel-side fixtures: a real IPython shell with the extension loaded, and private settings files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def settings_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test reads and writes its own settings file, never the user's."""
    path = tmp_path / "settings.json"
    monkeypatch.setenv("YIPYAP_SETTINGS_PATH", str(path))
    return path


@pytest.fixture(scope="session")
def ipython():
    """The process's IPython shell (a real `InteractiveShell`) with `%load_ext yipyap_jupyter` done."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "yipyap_jupyter")
    return shell


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_llada_dir: Path):
    """A real service whose default model is a tiny random LLaDA checkpoint, with its own settings file."""
    from yipyap_jupyter.service.service import DiffusionLLMService
    from yipyap_jupyter.settings import SettingsStore

    store = SettingsStore(tmp_path_factory.mktemp("service-settings") / "settings.json")
    return DiffusionLLMService(settings_store=store, default_model=str(tiny_llada_dir))


@pytest.fixture(scope="session")
def client(service):
    """A `DiffusionClient` over the local backend of `service`."""
    from yipyap_jupyter.kernel.client import DiffusionClient
    from yipyap_jupyter.kernel.local_backend import LocalBackend

    return DiffusionClient(LocalBackend(service))


@pytest.fixture
def magics(ipython, client):
    """The registered `DiffusionMagics`, working through `client`, with no last result."""
    instance = ipython.magics_manager.registry["DiffusionMagics"]
    instance.client = client
    instance.last = None
    return instance
