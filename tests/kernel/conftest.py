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
