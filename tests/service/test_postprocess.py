"""auto_trim and fix_punctuation."""

from __future__ import annotations

import pytest

from yipyap_jupyter.service.postprocess import auto_trim, clean, fix_punctuation


@pytest.mark.parametrize("raw, trimmed", [
    ("\nimport os  \n", "\nimport os"),  # the newline that joins the text to the prompt stays
    ("  Once upon a time. There was a", "  Once upon a time. There was a"),
    ("Done.  ", "Done."),
    ("   ", ""),
])
def test_auto_trim_drops_trailing_whitespace_only(raw: str, trimmed: str) -> None:
    assert auto_trim(raw) == trimmed


@pytest.mark.parametrize("raw, fixed", [
    ("Hello , world !", "Hello, world!"),
    ("It ended . Then", "It ended. Then"),
    ("The end .", "The end."),
    ("a  b   c", "a b c"),
    ("x = 0.5 and os.path", "x = 0.5 and os.path"),
    ("from . import views", "from . import views"),
    ("a . b", "a . b"),
    ("Look:\n```\nx  =  f(a , b)\n```\nDone .", "Look:\n```\nx  =  f(a , b)\n```\nDone."),
])
def test_fix_punctuation(raw: str, fixed: str) -> None:
    assert fix_punctuation(raw) == fixed


def test_clean_switches() -> None:
    raw = "One , two. Three  "
    assert clean(raw, trim=False, punctuation=False) == raw
    assert clean(raw, trim=True, punctuation=True) == "One, two. Three"
