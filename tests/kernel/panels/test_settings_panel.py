"""The settings panel saves on change, rejects bad values, and feeds new defaults to the other tabs."""

from __future__ import annotations

import json

from yipyap_jupyter.kernel.client import DiffusionClient
from yipyap_jupyter.kernel.local_backend import LocalBackend
from yipyap_jupyter.kernel.panels import SettingsPanel, TextLLMPanel
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore


def fresh_client(path) -> DiffusionClient:
    return DiffusionClient(LocalBackend(DiffusionLLMService(settings_store=SettingsStore(path))))


def test_changes_are_saved_and_reloaded(tmp_path) -> None:
    path = tmp_path / "settings.json"
    panel = SettingsPanel(fresh_client(path))
    panel.fields["max_new_tokens"].value = "48"
    panel.fields["auto_trim"].value = False
    panel.fields["preferred_device"].value = "cpu"
    saved = json.loads(path.read_text())
    assert (saved["max_new_tokens"], saved["auto_trim"], saved["preferred_device"]) == (48, False, "cpu")
    assert "saved preferred_device = cpu" in panel.status.value
    again = SettingsPanel(fresh_client(path))
    assert again.fields["max_new_tokens"].value == "48" and again.fields["auto_trim"].value is False


def test_rejected_value_is_put_back(tmp_path) -> None:
    path = tmp_path / "settings.json"
    panel = SettingsPanel(fresh_client(path))
    panel.fields["preferred_device"].options = ["auto", "cpu", "tpu"]  # a value the settings model refuses
    panel.fields["preferred_device"].value = "tpu"
    assert panel.fields["preferred_device"].value == "auto"
    assert "validation error: preferred_device" in panel.status.value
    assert not path.exists()


def test_text_llm_panel_composes_tabs_and_shares_defaults(tmp_path) -> None:
    panel = TextLLMPanel(fresh_client(tmp_path / "settings.json"))
    assert panel.widget.titles == ("Generate", "Infill", "Models", "Settings", "Downloads")
    panel.settings.fields["max_new_tokens"].value = "24"
    panel.settings.fields["preferred_device"].value = "cpu"
    assert panel.generator.max_new_tokens.placeholder == panel.infiller.max_new_tokens.placeholder == "default 24"
    panel.settings.fields["max_new_tokens"].value = ""  # blank: each model's own default again
    assert panel.settings.settings.max_new_tokens is None
    assert panel.generator.max_new_tokens.placeholder == "model default"
    assert panel.selector.device.value == "cpu"
    bundle = panel._repr_mimebundle_()
    assert bundle["text/plain"] == "<TextLLMPanel: yipyap diffusion>"
    assert "application/vnd.jupyter.widget-view+json" in bundle
