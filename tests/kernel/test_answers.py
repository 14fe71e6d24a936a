"""`%diffuse` answers render as tables and lines, in HTML and plain text."""

from __future__ import annotations

from yipyap_jupyter.kernel.answers import (
    ModelTable,
    ModelView,
    SettingsView,
    describe_model,
    human_count,
    human_size,
)
from yipyap_jupyter.service.schemas import ModelInfo
from yipyap_jupyter.settings import UserSettings


def info(**fields: object) -> ModelInfo:
    base = {"id": "tiny", "name": "Tiny", "family": "llada", "capabilities": ["generate"]}
    return ModelInfo(**{**base, **fields})


def test_sizes_and_counts() -> None:
    assert human_size(0) == "-"
    assert human_size(999) == "999 B"
    assert human_size(3_400_000) == "3.4 MB"
    assert human_size(16_100_000_000) == "16.1 GB"
    assert human_count(8_020_000_000) == "8.0B"
    assert human_count(3_200_000) == "3.2M"
    assert human_count(None) == "-"


def test_model_table_lists_state() -> None:
    table = ModelTable([info(cached=True, loaded=True, device="cpu", size_on_disk=2_000_000),
                        info(id="llada-8b-instruct", repo_id="GSAI-ML/LLaDA-8B-Instruct")])
    text = repr(table).splitlines()
    assert text[0].split() == ["id", "family", "cached", "loaded", "device", "size"]
    assert text[1].split() == ["tiny", "llada", "yes", "yes", "cpu", "2.0", "MB"]
    assert text[2].split() == ["llada-8b-instruct", "llada", "no", "no", "-", "-"]
    assert table._repr_html_().count("<tr>") == 3


def test_model_view_says_fallback_and_backend() -> None:
    loaded = info(loaded=True, device="cpu", dtype="float32", parameters=3_200_000, fallback="out of memory on cuda")
    assert describe_model(loaded) == "tiny (Tiny) on cpu, float32, 3.2M parameters — out of memory on cuda"
    assert repr(ModelView(None, "local")) == "No model loaded.  [local backend]"


def test_settings_view() -> None:
    text = repr(SettingsView(UserSettings(max_new_tokens=32), saved=True))
    assert "max_new_tokens    32" in text.splitlines() and text.endswith("saved")
