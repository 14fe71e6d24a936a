"""The README's variable-length infill example, run as written with the shipped `tiny`: a non-empty middle."""

from __future__ import annotations

import re
from pathlib import Path

from yipyap_jupyter.kernel.client import DiffusionClient
from yipyap_jupyter.kernel.local_backend import LocalBackend
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_variable_infill_example_fills_its_gap(ipython, magics, tmp_path) -> None:
    (cell,) = re.findall(r"```\n(%%diffuse --variable[^`]*?)\n```", README.read_text(encoding="utf-8"))
    service = DiffusionLLMService(settings_store=SettingsStore(tmp_path / "settings.json"))  # default model: tiny
    magics.client = DiffusionClient(LocalBackend(service))
    run = ipython.run_cell(cell)
    assert run.error_in_exec is None
    result = run.result
    assert result.model == "tiny" and result.tokens > 0 and result.text.strip()
    said = re.search(r"With `tiny` this fills the gap with `([^`]+)`", README.read_text(encoding="utf-8"))
    assert said is not None and result.text.rstrip() == said.group(1)  # the README says what it gives
