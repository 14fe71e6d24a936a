"""A real Jupyter server with the extension, per test (pytest-jupyter), serving a tiny random checkpoint.

`yipyap_traits` overrides `DiffusionLLMApp` traits: parametrize it indirectly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # the plugin's fixtures and hooks, for this folder only
from traitlets.config import Config


@pytest.fixture
def yipyap_traits(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(getattr(request, "param", {}))


@pytest.fixture
def jp_server_config(yipyap_traits: dict[str, Any], tiny_llada_dir: Path, tmp_path: Path) -> Config:
    traits = {"default_model": str(tiny_llada_dir), "rate_limit_per_minute": 0.0,
              "log_dir": str(tmp_path / "yipyap-logs"), "metrics_db": str(tmp_path / "metrics.sqlite"),
              **yipyap_traits}
    return Config({"ServerApp": {"jpserver_extensions": {"yipyap_jupyter": True}}, "DiffusionLLMApp": traits})


@pytest.fixture(scope="session")
def slow_llada_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wider than the shared tiny checkpoint, so a long generation takes a while on one thread."""
    from checkpoints import make_llada_checkpoint

    return make_llada_checkpoint(tmp_path_factory.mktemp("llada-slow"), n_layers=4, d_model=128)
