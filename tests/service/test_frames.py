"""Incremental step text: stable text only, concatenation equals the final raw text, restarts reset."""

from __future__ import annotations

from yipyap_jupyter.constants import MASK_GLYPH as M
from yipyap_jupyter.engine.decoder import GenerationStep
from yipyap_jupyter.service.frames import StepFrames


def step(n: int, total: int, settled: str, text: str, masks: int) -> GenerationStep:
    pieces = tuple(["w"] * (total - masks) + [M] * masks)
    states = tuple(["settled"] * (total - masks) + ["masked"] * masks)
    return GenerationStep(step=n, total_steps=total, tokens=tuple(range(total)), pieces=pieces, states=states,
                          changed=(n - 1,),
                          confidences=(0.5,), settled_text=settled, canvas=text + M * masks, text=text, progress=n / total,
                          text_tokens=total - masks, ended=False)


def test_text_is_held_back_until_stable_and_adds_up() -> None:
    frames = StepFrames()
    sent = [frames.frame(step(1, 3, "Once upon ", "Once upon ", 2)).text,
            frames.frame(step(2, 3, "Once upon a\ufffd", "Once upon a\ufffd", 1)).text,
            frames.frame(step(3, 3, "Once upon a time ", "Once upon a time ", 0)).text]
    assert sent == ["Once upon", " a", " time "]
    assert "".join(sent) == "Once upon a time "
    assert frames.closing_frame() is None
    assert len(frames.history) == 3


def test_closing_frame_sends_what_the_last_step_left() -> None:
    frames = StepFrames()
    frames.frame(step(1, 4, "Hi ", "Hi there", 2))
    closing = frames.closing_frame()
    assert closing is not None and closing.text == " there" and frames.emitted == "Hi there"


def test_a_restarted_run_starts_over() -> None:
    frames = StepFrames()
    frames.frame(step(1, 2, "abc", "abc", 1))
    frames.restart()
    restarted = frames.frame(step(1, 2, "xy", "xy", 1))
    assert restarted.text == "xy" and frames.history == ["xy" + M]


def test_steps_carry_each_positions_state() -> None:
    event = StepFrames().frame(step(1, 3, "w", "ww", 1))
    assert event.states == ["settled", "settled", "masked"]
