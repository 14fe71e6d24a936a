"""auto_trim and fix_punctuation."""

from __future__ import annotations

import pytest

from yipyap_jupyter.service.postprocess import auto_trim, clean, fix_punctuation


@pytest.mark.parametrize("raw, trimmed", [
    ("  Once upon a time. There was a", "Once upon a time."),
    ("It rained! Then the", "It rained!"),
    ('He said "stop." And then', 'He said "stop."'),
    ("def f():\n    return 1\n    x = ", "def f():\n    return 1"),
    ("Done.  ", "Done."),
    ("no sentence end at all", "no sentence end at all"),
    ("   ", ""),
])
def test_auto_trim(raw: str, trimmed: str) -> None:
    assert auto_trim(raw) == trimmed


def test_auto_trim_keeps_a_finished_generation_whole() -> None:
    assert auto_trim(" The end was near and ", finished=True) == "The end was near and"


@pytest.mark.parametrize("raw, fixed", [
    ("Hello , world !", "Hello, world!"),
    ("a  b   c", "a b c"),
    ("def f():\n    x = 1  ,", "def f():\n    x = 1,"),
    ("x = 0.5 and os.path", "x = 0.5 and os.path"),
])
def test_fix_punctuation(raw: str, fixed: str) -> None:
    assert fix_punctuation(raw) == fixed


def test_clean_switches() -> None:
    raw = "One , two. Three"
    assert clean(raw, trim=False, punctuation=False, finished=False) == raw
    assert clean(raw, trim=True, punctuation=True, finished=False) == "One, two."
