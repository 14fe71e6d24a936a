"""SettingsStore: defaults, validation that leaves the file alone, atomic saves, the env override."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yipyap_jupyter.errors import ValidationError
from yipyap_jupyter.settings import SETTINGS_PATH_ENV, SettingsStore, UserSettings


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert SettingsStore(tmp_path / "none.json").load() == UserSettings()


def test_update_persists_and_merges(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "deep" / "settings.json")
    store.update({"max_new_tokens": 100})
    saved = store.update({"auto_trim": False})
    assert saved.max_new_tokens == 100 and saved.auto_trim is False
    assert json.loads(store.path.read_text())["max_new_tokens"] == 100
    assert list(store.path.parent.iterdir()) == [store.path]  # no temporary file left behind


@pytest.mark.parametrize("changes", [{"max_new_tokens": 0}, {"request_timeout": 9999}, {"preferred_device": "tpu"},
                                     {"colour": "blue"}, ["not", "a", "dict"]])
def test_bad_update_is_rejected_and_file_untouched(tmp_path: Path, changes: object) -> None:
    store = SettingsStore(tmp_path / "settings.json")
    store.update({"max_new_tokens": 7})
    before = store.path.read_bytes()
    with pytest.raises(ValidationError):
        store.update(changes)  # type: ignore[arg-type]
    assert store.path.read_bytes() == before


def test_unreadable_file_falls_back_to_defaults(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    assert SettingsStore(path).load() == UserSettings()


def test_env_override_moves_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SETTINGS_PATH_ENV, str(tmp_path / "elsewhere.json"))
    assert SettingsStore().path == tmp_path / "elsewhere.json"
