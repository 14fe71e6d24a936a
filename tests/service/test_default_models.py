"""Requests that name no model: `tiny-block` generates, `tiny` infills, and the one resident model swaps between them."""

from __future__ import annotations

from pathlib import Path

import pytest

from yipyap_jupyter.constants import DEFAULT_INFILL_MODEL_ID, DEFAULT_MODEL_ID, default_model_for
from yipyap_jupyter.errors import ValidationError
from yipyap_jupyter.service.service import DiffusionLLMService
from yipyap_jupyter.settings import SettingsStore


def _service(tmp_path: Path, **kwargs) -> DiffusionLLMService:
    return DiffusionLLMService(settings_store=SettingsStore(tmp_path / "settings.json"), **kwargs)


def _resident(service: DiffusionLLMService) -> str | None:
    current = service.manager.current()
    return current.id if current is not None else None


@pytest.mark.parametrize(
    ("job", "resident", "default", "expected"),
    [
        ("generate", None, DEFAULT_MODEL_ID, "tiny-block"),
        ("infill", None, DEFAULT_MODEL_ID, "tiny"),
        ("infill", "tiny-block", DEFAULT_MODEL_ID, "tiny"),  # the shipped default cannot infill: swapped
        ("generate", "tiny", DEFAULT_MODEL_ID, "tiny"),  # a resident model that can do the job stays
        ("infill", "llada-8b-instruct", DEFAULT_MODEL_ID, "llada-8b-instruct"),
        ("infill", None, "dream-v0-instruct-7b", "dream-v0-instruct-7b"),  # a configured default is kept
        ("infill", "tiny-block", "dream-v0-instruct-7b", "tiny-block"),  # and so is what the user loaded
        ("generate", None, None, None),
    ],
)
def test_the_model_a_request_without_one_runs_on(job: str, resident: str | None, default: str | None,
                                                  expected: str | None) -> None:
    assert default_model_for(job, resident, default) == expected


def test_generate_then_infill_then_generate_with_no_model_named(tmp_path: Path) -> None:
    service = _service(tmp_path)
    assert DEFAULT_MODEL_ID == "tiny-block" and DEFAULT_INFILL_MODEL_ID == "tiny"
    assert service.generate({"prompt": "def add(a, b):\n", "seed": 0}).model_used == "tiny-block"
    for variable in (False, True):
        done = service.infill({"prefix": "def add(a, b):\n", "suffix": "\n    return c\n", "variable": variable})
        assert done.model_used == "tiny" and done.text.strip()
    assert _resident(service) == "tiny"
    assert service.generate({"prompt": "def add(a, b):\n", "seed": 0}).model_used == "tiny"  # resident, can do it
    assert service.generate({"prompt": "x = ", "model": "tiny-block"}).model_used == "tiny-block"
    assert _resident(service) == "tiny-block"


def test_infill_naming_tiny_block_says_it_cannot(tmp_path: Path) -> None:
    service = _service(tmp_path)
    with pytest.raises(ValidationError, match="tiny-block"):
        service.infill({"prefix": "a", "suffix": "b", "model": "tiny-block"})
