"""Every view builds the same request from the same input, so every view gets the same text.

The CLI, `%%diffuse`, the generator panel and `DiffusionClient.generate` send only what
the user set (no steps, seed or temperature of their own); a Dream-architecture model
is used because its default temperature (0.2) is not 0, so a view that sent a
temperature of its own would sample differently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from yipyap_jupyter.__main__ import main
from yipyap_jupyter.kernel.client import DiffusionClient
from yipyap_jupyter.kernel.local_backend import LocalBackend
from yipyap_jupyter.kernel.panels import TextGeneratorPanel, TextInfillerPanel
from yipyap_jupyter.kernel.panels.infiller import VARIABLE
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore

PROMPT = "def add(a, b):"


@pytest.fixture
def client(tmp_path: Path, tiny_llada_dir: Path) -> Iterator[DiffusionClient]:
    """A client over a service of its own: the Dream models these tests load never reach the session's client."""
    service = DiffusionLLMService(settings_store=SettingsStore(tmp_path / "own-settings.json"),
                                  default_model=str(tiny_llada_dir))
    yield DiffusionClient(LocalBackend(service))
    service.manager.unload()


def test_cli_magic_panel_and_client_agree(ipython, magics, client, tiny_dream_dir, capsys) -> None:
    client.load(str(tiny_dream_dir), "cpu")
    from_python = client.generate(PROMPT, seed=7, max_new_tokens=16)
    cell = ipython.run_cell(f"%%diffuse --seed 7 --max-new-tokens 16 --no-stream\n{PROMPT}")
    assert cell.error_in_exec is None
    panel = TextGeneratorPanel(client)
    panel.prompt.value, panel.seed.value, panel.max_new_tokens.value = PROMPT, "7", "16"
    panel.generate_button.click()
    assert panel.wait(120) and panel.result is not None
    capsys.readouterr()
    assert main([PROMPT, "--model", str(tiny_dream_dir), "--seed", "7", "--max-new-tokens", "16", "--quiet"]) == 0
    from_cli = capsys.readouterr().out
    assert from_python.options["temperature"] == 0.2  # Dream's own default, the same in every view
    assert cell.result.options == panel.result.options == from_python.options
    assert from_cli == from_python.text + "\n"
    assert cell.result.raw_text == panel.result.raw_text == from_python.raw_text
    assert cell.result.text == panel.result.text == from_python.text


def test_infill_views_agree(ipython, magics, client, tiny_dreamon_dir, capsys) -> None:
    client.load(str(tiny_dreamon_dir), "cpu")
    prefix, suffix = "x = ", "\nprint(x)"
    from_python = client.infill(prefix, suffix, seed=3, max_new_tokens=8, variable=True)
    cell = ipython.run_cell(f"%%diffuse --variable --seed 3 --max-new-tokens 8 --no-stream\n{prefix}<|infill|>{suffix}")
    panel = TextInfillerPanel(client)
    panel.prefix.value, panel.suffix.value, panel.seed.value, panel.max_new_tokens.value = prefix, suffix, "3", "8"
    panel.mode.value = VARIABLE
    panel.infill_button.click()
    assert panel.wait(120) and panel.result is not None
    capsys.readouterr()
    assert main([prefix, "--suffix", suffix, "--variable", "--model", str(tiny_dreamon_dir), "--seed", "3",
                 "--max-new-tokens", "8", "--quiet"]) == 0
    assert capsys.readouterr().out == from_python.text + "\n"
    assert cell.result.raw_text == panel.result.raw_text == from_python.raw_text


def test_diffusiongemma_options_reach_it_from_every_view(ipython, magics, client, tiny_gemma_dir, capsys) -> None:
    """Its own options (--entropy-bound, --t-max, ...) in the magic, the panel's knobs, the CLI and the client."""
    client.load(str(tiny_gemma_dir), "cpu")
    options = {"seed": 2, "max_new_tokens": 16, "entropy_bound": 0.5, "t_max": 1.2, "stability_threshold": 0}
    from_python = client.generate(PROMPT, **options)
    assert {"entropy_bound": 0.5, "t_max": 1.2, "t_min": 0.4, "steps": 6}.items() <= from_python.options.items()
    cell = ipython.run_cell("%%diffuse --seed 2 --max-new-tokens 16 --entropy-bound 0.5 --t-max 1.2 "
                            f"--stability-threshold 0 --no-stream\n{PROMPT}")
    assert cell.error_in_exec is None
    panel = TextGeneratorPanel(client)
    panel.prompt.value = PROMPT
    for name, value in options.items():
        panel.knobs[name].value = str(value)
    panel.generate_button.click()
    assert panel.wait(120) and panel.result is not None
    capsys.readouterr()
    assert main([PROMPT, "--model", str(tiny_gemma_dir), "--seed", "2", "--max-new-tokens", "16",
                 "--entropy-bound", "0.5", "--t-max", "1.2", "--stability-threshold", "0", "--quiet"]) == 0
    assert capsys.readouterr().out == from_python.text + "\n"
    assert cell.result.raw_text == panel.result.raw_text == from_python.raw_text
    assert len(from_python.history) == from_python.steps  # one canvas per denoising step
