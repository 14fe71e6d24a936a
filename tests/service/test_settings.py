"""SettingsStore: defaults, validation that leaves the file alone, atomic saves, the env override."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from processes import finish

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
    # no temporary file is left behind
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["settings.json", "settings.json.lock"]


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


def test_two_processes_updating_different_keys_lose_nothing(tmp_path: Path) -> None:
    """Each process checks, before every update, that its own key still holds what it last wrote."""
    path, go = tmp_path / "settings.json", tmp_path / "go"
    worker = (
        "import sys, time, pathlib\n"
        "from yipyap_jupyter.settings import SettingsStore\n"
        "store, key, go = SettingsStore(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])\n"
        "while not go.exists(): time.sleep(0.001)\n"
        "lost, last = 0, None\n"
        "for value in range(2, 202):\n"
        "    if last is not None and getattr(store.load(), key) != last: lost += 1\n"
        "    last = getattr(store.update({key: value}), key)\n"
        "print(lost)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    processes = [subprocess.Popen([sys.executable, "-c", worker, str(path), key, str(go)], env=env,
                                  stdout=subprocess.PIPE, text=True)
                 for key in ("max_new_tokens", "request_timeout")]
    try:
        go.touch()
        lost = [int(finish(process)[0]) for process in processes]
    finally:
        for process in processes:  # one that failed leaves no other behind
            if process.poll() is None:
                process.kill()
                process.wait()
    assert lost == [0, 0]
    saved = SettingsStore(path).load()
    assert (saved.max_new_tokens, saved.request_timeout) == (201, 201)
