"""Generator and infiller panels driven headlessly: set values, click, wait, read the widgets."""

from __future__ import annotations

from yipyap_jupyter.kernel.panels import TextGeneratorPanel, TextInfillerPanel
from yipyap_jupyter.kernel.panels.infiller import VARIABLE


def test_generate_click_shows_the_final_text_and_summary(client) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "once upon a time"
    panel.max_new_tokens.value, panel.steps.value, panel.seed.value = 8, 4, "5"
    panel.generate_button.click()
    assert panel.wait(60)
    result = panel.result
    assert result is not None and result.steps == 4
    assert panel.view.timing.value == result.summary and panel.view.progress.value == 1.0
    assert result.text.split()[0] in panel.view.canvas.value and "once upon a time" in panel.view.canvas.value
    assert not panel.generate_button.disabled and panel.stop_button.disabled
    same = client.generate("once upon a time", max_new_tokens=8, steps=4, seed=5, temperature=0.0)
    assert same.raw_text == result.raw_text


def test_stop_cancels_and_the_model_stays_usable(client) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "the cat"
    panel.max_new_tokens.value, panel.steps.value = 512, 512
    panel.generate_button.click()
    assert panel.stop_button.disabled is False
    panel.stop_button.click()
    assert panel.wait(60)
    assert panel.result is None and "stopped at step" in panel.view.status.value
    panel.max_new_tokens.value, panel.steps.value = 8, 4
    panel.generate_button.click()
    assert panel.wait(60) and panel.result is not None


def test_errors_show_category_and_retry_hint(client) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "x"
    panel.seed.value = "abc"
    assert panel.run() is False
    assert "validation error: seed must be a whole number" in panel.view.status.value
    panel.seed.value = ""
    panel.max_new_tokens.value, panel.steps.value = 4, 8
    panel.generate_button.click()
    assert panel.wait(60)
    assert panel.view.error is not None and panel.view.error.error_type == "validation"
    assert "(retrying will not help)" in panel.view.status.value


def test_infill_fixed_and_variable(client) -> None:
    panel = TextInfillerPanel(client)
    panel.prefix.value, panel.suffix.value = "def f ( x ) :", "return x"
    panel.max_new_tokens.value, panel.steps.value, panel.seed.value = 6, 3, "1"
    panel.infill_button.click()
    assert panel.wait(60)
    assert panel.result is not None and len(panel.result.frames[-1].pieces) == 6
    assert panel.result.context.after == "return x"
    panel.mode.value = VARIABLE
    assert panel.options()["variable"] is True and "length" not in panel.options()
    panel.infill_button.click()
    assert panel.wait(60) and panel.result is not None and panel.view.error is None
