"""Model selector and model management panels, headless, over a real local service."""

from __future__ import annotations

from yipyap_jupyter.kernel.panels import ModelManagementPanel, ModelSelectorPanel


def test_selector_loads_unloads_and_reports_errors(client, tiny_llada_dir) -> None:
    client.load(str(tiny_llada_dir), "cpu")
    panel = ModelSelectorPanel(client)
    assert panel.model.value == str(tiny_llada_dir)
    assert dict(panel.model.options)[f"{tiny_llada_dir} (loaded)"] == str(tiny_llada_dir)
    assert "loaded: " in panel.loaded.value and "on cpu, float32" in panel.loaded.value
    panel.unload_button.click()
    assert panel.wait(60) and "No model loaded." in panel.loaded.value
    panel.model.value = "llada-8b-instruct"
    panel.load_button.click()
    assert panel.wait(60)
    assert "model_unavailable error:" in panel.status.value and not panel.load_button.disabled
    client.load(str(tiny_llada_dir), "cpu")
    panel.refresh_button.click()
    panel.device.value = "auto"  # a preference: the panel shows where the model really went
    panel.model.value = str(tiny_llada_dir)
    panel.load_button.click()
    assert panel.wait(60) and "on cpu, float32" in panel.loaded.value and panel.device.value == "auto"


def test_management_lists_cache_state_and_shows_download_errors(client) -> None:
    panel = ModelManagementPanel(client)
    # one grid of label | bar | button, so every bar starts at the same place
    assert len(panel.table.layout.grid_template_columns.split()) == 3
    assert panel.table.children[:3] == tuple(panel.rows["tiny"].cells)
    tiny, llada = panel.rows["tiny"], panel.rows["llada-8b-instruct"]
    assert tiny.button.disabled and "in the package" in tiny.label.value
    assert "not downloaded" in llada.label.value and not llada.button.disabled
    llada.button.click()  # offline in tests: the hub is never reached
    assert llada.job.wait(60)
    assert "network error:" in panel.status.value and "HF_HUB_OFFLINE" in panel.status.value
    assert not llada.button.disabled
