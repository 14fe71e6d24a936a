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


def result(frames: list[StepEvent], **options: object) -> DiffusionResult:
    text = "".join(frames[-1].pieces)
    return DiffusionResult(text=text, raw_text=text, history=[], generation_time=0.5, model="tiny", device="cpu",
                           tokens=len(frames[-1].pieces), steps=len(frames), context=Context(before="p "),
                           frames=frames, options=dict(options))


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


def block_by_block(final: list[str], block_length: int) -> list[StepEvent]:
    """Frames of a run that writes `final` block by block, two steps per block (the second half, then the first)."""
    pieces, frames = [M] * len(final), []
    blocks = len(final) // block_length
    for block in range(blocks):
        start, half = block * block_length, block_length // 2
        for chosen in (range(start + half, start + block_length), range(start, start + half)):
            for index in chosen:
                pieces[index] = final[index]
            frames.append(frame(len(frames) + 1, 2 * blocks, list(pieces), list(chosen)))
    return frames


def marked(html: str) -> str:
    """The decode-order HTML's tokens in order, `|` where a block mark is drawn."""
    return "".join("|" if mark else piece for mark, piece in
                   re.findall(r'(class="yipyap-block-start")|title="step [^"]*">([^<]*)</span>', html))


TWELVE = list("abcdefghijkl")


def test_blocks_are_marked_before_the_first_token_of_each_block() -> None:
    order = result(block_by_block(TWELVE, 4), max_new_tokens=12, block_length=4).decode_order()
    assert order.block_starts == [4, 8]
    assert marked(order._repr_html_()) == "abcd|efgh|ijkl"
    text = repr(order)
    assert text.splitlines()[0] == "decode order: 12 tokens in 6 steps · blocks of 4 (│ before a block's first token)"
    assert "│ 'e' 'f'" in text and "│ 'i' 'j'" in text and text.count("│") == 3  # the header's and two marks


def test_blocks_that_began_in_the_prompt_are_marked_where_they_end() -> None:
    """LLaDA 2.x and SDAR share the first block with the prompt's tail: a prompt of 10 tokens, blocks of 4."""
    frames = [frame(1, 1, TWELVE, list(range(12)))]
    order = DiffusionResult(text="", raw_text="", history=[], generation_time=0.1, model="tiny", device="cpu",
                            tokens=12, steps=1, frames=frames, options={"block_length": 4}, block_origin=-10).decode_order()
    assert marked(order._repr_html_()) == "ab|cdef|ghij|kl"


def test_one_block_or_no_block_length_marks_nothing() -> None:
    frames = block_by_block(TWELVE, 4)
    for options in ({"max_new_tokens": 12, "block_length": 12}, {"max_new_tokens": 12}, {}):
        order = result(frames, **options).decode_order()
        assert order.block_starts == [] and "yipyap-block-start" not in order._repr_html_()
        assert marked(order._repr_html_()) == "abcdefghijkl" and "│" not in repr(order)


def test_block_marks_count_the_padding_left_out() -> None:
    """End-of-text padding is not drawn, but it holds its positions: the marks stay at the blocks' first tokens."""
    final = ["a", "b", "c", "d", "e", "", "", "", "i", "j", "", ""]
    order = result(block_by_block(final, 4), block_length=4).decode_order()
    assert marked(order._repr_html_()) == "abcd|e|ij"
    padded_tail = ["a", "b", "c", "d", "e", "f", "", "", "", "", "", ""]  # the last block is all padding: no mark
    assert marked(result(block_by_block(padded_tail, 4), block_length=4).decode_order()._repr_html_()) == "abcd|ef"


def test_a_region_that_changes_length_has_no_block_marks() -> None:
    frames = [frame(1, 2, ["a", M, "z", M, M], [0, 2]), frame(2, 2, ["a", "b", "z", "y"], [1, 3])]
    assert result(frames, block_length=2).decode_order().block_starts == []
