"""A real model manager with a tiny random LLaDA checkpoint loaded, shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from yipyap_jupyter.engine.runtime import DiffusionModelManager
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore


@pytest.fixture(scope="module")
def loaded_manager(tiny_llada_dir: Path) -> Iterator[DiffusionModelManager]:
    manager = DiffusionModelManager()
    manager.load(str(tiny_llada_dir), device="cpu")
    yield manager
    manager.unload()


@pytest.fixture
def service(loaded_manager: DiffusionModelManager, tmp_path: Path) -> DiffusionLLMService:
    return DiffusionLLMService(loaded_manager, SettingsStore(tmp_path / "settings.json"), default_model=None)
