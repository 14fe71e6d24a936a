"""The canvas views: masks shaded, this step's tokens highlighted, context set apart, text twins."""

from __future__ import annotations

from yipyap_jupyter.constants import MASK_GLYPH
from yipyap_jupyter.kernel.render import (
    CHANGED_STYLE,
    CONTEXT_STYLE,
    MASK_STYLE,
    UNSETTLED_STYLE,
    Context,
    canvas_html,
    canvas_text,
    error_line,
    options_line,
    progress_line,
    stopped_line,
    summary_line,
    text_html,
)


def test_canvas_marks_masks_changed_and_plain_tokens() -> None:
    pieces = ["def", " f", MASK_GLYPH, MASK_GLYPH]
    html = canvas_html(Context(before="prompt "), pieces, changed=[1])
    assert html.count(f'<span style="{MASK_STYLE}">{MASK_GLYPH}</span>') == 2
    assert f'<span style="{CHANGED_STYLE}"> f</span>' in html
    assert f'<span style="{CONTEXT_STYLE}">prompt </span>def<span' in html


def test_canvas_draws_each_position_by_its_state_not_by_comparing_pieces() -> None:
    # uniform-state diffusion: real tokens that may still change, even one that looks like the mask glyph
    pieces = ["def", " f", MASK_GLYPH, "(x)"]
    states = ["settled", "unsettled", "unsettled", "masked"]
    html = canvas_html(Context(), pieces, changed=[0], states=states)
    assert html.count(f'style="{UNSETTLED_STYLE}"') == 2 and html.count(f'<span style="{MASK_STYLE}">') == 1
    assert canvas_text(pieces, states=states) == f"def f{MASK_GLYPH}{MASK_GLYPH}"
    assert canvas_text(["a", "b"], states=["unsettled", "settled"]) == "ab"


def test_canvas_sets_prefix_and_suffix_apart_and_escapes() -> None:
    html = canvas_html(Context(before="a <b>", after=" & c"), ["x"], changed=[])
    assert f'<span style="{CONTEXT_STYLE}">a &lt;b&gt;</span>x<span style="{CONTEXT_STYLE}"> &amp; c</span>' in html


def test_plain_text_twin_shows_masks_and_footer() -> None:
    assert canvas_text(["a", MASK_GLYPH, "b"], "step 1/2") == f"a{MASK_GLYPH}b\nstep 1/2"
    assert canvas_text(["a"]) == "a"


def test_finished_text_has_no_mask_markup() -> None:
    html = text_html(Context(before="p"), "done", "footer")
    assert MASK_STYLE not in html and "done" in html and "footer" in html


def test_lines() -> None:
    assert progress_line(3, 8, 10, 2.0) == "step 3/8 · 5.0 tok/s"
    assert progress_line(1, 8, 2, 0.0) == "step 1/8"  # no rate before any time has passed, rather than 0.0
    assert stopped_line(6, 512) == "stopped at step 6 of 512"
    assert stopped_line(0, 0) == "stopped before the first step"
    assert options_line({"model": "tiny", "steps": 8, "temperature": 0.0, "cache": "none", "threshold": None}) == (
        "steps 8 · temperature 0.0 · cache none")
    assert summary_line(12, 4, 0.5, "tiny", "cpu") == "12 tokens · 4 steps · 0.50 s · tiny · cpu"
    assert error_line("timeout", "took too long", True) == "timeout error: took too long (a retry may help)"
    assert error_line("validation", "bad", False).endswith("(retrying will not help)")
