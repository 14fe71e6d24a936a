"""Model selector and model management panels, headless, over a real local service."""

from __future__ import annotations

from yipyap_jupyter.kernel.panels import ModelManagementPanel, ModelSelectorPanel


def test_selector_loads_unloads_and_reports_errors(client, tiny_llada_dir) -> None:
    client.load(str(tiny_llada_dir), "cpu")
    panel = ModelSelectorPanel(client)
    assert panel.model.value == str(tiny_llada_dir)
    assert dict(panel.model.options)[f"{tiny_llada_dir} (loaded)"] == str(tiny_llada_dir)
    assert "on cpu" in panel.status.value
    panel.unload_button.click()
    assert panel.wait(60) and "No model loaded." in panel.status.value
    panel.model.value = "llada-8b-instruct"
    panel.load_button.click()
    assert panel.wait(60)
    assert "model_unavailable error:" in panel.status.value and not panel.load_button.disabled
    client.load(str(tiny_llada_dir), "cpu")
    panel.refresh_button.click()
    panel.device.value = "cpu"
    panel.model.value = str(tiny_llada_dir)
    panel.load_button.click()
    assert panel.wait(60) and "on cpu" in panel.status.value


def test_management_lists_cache_state_and_shows_download_errors(client) -> None:
    panel = ModelManagementPanel(client)
    tiny, llada = panel.rows["tiny"], panel.rows["llada-8b-instruct"]
    assert tiny.button.disabled and "in the package" in tiny.label.value
    assert "not downloaded" in llada.label.value and not llada.button.disabled
    llada.button.click()  # offline in tests: the hub is never reached
    assert llada.job.wait(60)
    assert "network error:" in panel.status.value and "HF_HUB_OFFLINE" in panel.status.value
    assert not llada.button.disabled
