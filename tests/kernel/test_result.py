"""`result.decode_order()`: each token coloured by the step that committed it, with a chart of tokens per step."""

from __future__ import annotations

import re

from yipyap_jupyter.constants import MASK_GLYPH as M
from yipyap_jupyter.kernel.render import Context, step_colour
from yipyap_jupyter.kernel.result import DiffusionResult, committed_at
from yipyap_jupyter.service.events import StepEvent


def frame(step: int, total: int, pieces: list[str], changed: list[int], **fields: object) -> StepEvent:
    return StepEvent(step=step, total_steps=total, text="", canvas="".join(pieces), progress=step / total,
                     pieces=pieces, changed=changed, **fields)


def result(frames: list[StepEvent]) -> DiffusionResult:
    text = "".join(frames[-1].pieces)
    return DiffusionResult(text=text, raw_text=text, history=[], generation_time=0.5, model="tiny", device="cpu",
                           tokens=len(frames[-1].pieces), steps=len(frames), context=Context(before="p "),
                           frames=frames)


def test_each_token_gets_the_step_that_committed_it() -> None:
    frames = [frame(1, 3, ["def", M, M, M], [0]), frame(2, 3, ["def", M, "(", M], [2]),
              frame(3, 3, ["def", " f", "(", ""], [1, 3])]
    assert committed_at(frames) == [("def", 1, None), (" f", 3, None), ("(", 2, None)]  # the "" end token is left out


def test_positions_follow_a_region_that_grows_and_shrinks() -> None:
    """Variable-length infill: a mask expands into two, then one is deleted; steps stay with their tokens."""
    frames = [frame(1, 4, ["a", M, "z"], [0, 2]), frame(2, 4, ["a", M, M, "z"], []),
              frame(3, 4, ["a", "b", M, "z"], [1]), frame(4, 4, ["a", "b", "z"], [])]
    assert [(piece, step) for piece, step, _ in committed_at(frames)] == [("a", 1), ("b", 3), ("z", 1)]


def test_html_colours_tokens_shows_confidence_on_hover_and_charts_tokens_per_step() -> None:
    frames = [frame(1, 2, ["x", M], [0], confidences=[0.91]), frame(2, 2, ["x", "y"], [1], confidences=[0.5])]
    html = result(frames).decode_order()._repr_html_()
    assert 'title="step 1 · confidence 0.91"' in html and 'title="step 2 · confidence 0.50"' in html
    assert f"background: {step_colour(1, 2)}" in html and f"background: {step_colour(2, 2)}" in html
    assert step_colour(1, 2) != step_colour(2, 2)
    assert len(re.findall(r"<rect ", html)) == 2 and "<title>step 2: 1 tokens</title>" in html
    assert "<script" not in html and "class=" in html and "style=" in html  # inline styles, no JavaScript


def test_without_confidences_the_view_still_renders_and_has_a_text_twin() -> None:
    frames = [frame(1, 2, ["x", M], [0]), frame(2, 2, ["x", "yy"], [1])]
    order = result(frames).decode_order()
    assert 'title="step 1"' in order._repr_html_()
    assert repr(order).splitlines() == ["decode order: 2 tokens in 2 steps", "step 1 █   1  'x'", "step 2 █   1  'yy'"]


def test_a_stopped_run_shows_its_masks() -> None:
    order = result([frame(1, 4, ["x", M, M], [0])]).decode_order()
    assert order._repr_html_().count('title="still masked"') == 2
