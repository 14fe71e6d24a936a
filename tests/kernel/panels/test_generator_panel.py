"""Generator and infiller panels driven headlessly: set values, click, wait, read the widgets."""

from __future__ import annotations

import threading

from held_network import HeldNetwork

from yipyap_jupyter.kernel.panels import TextGeneratorPanel, TextInfillerPanel
from yipyap_jupyter.kernel.panels.infiller import VARIABLE


def test_generate_click_shows_the_final_text_and_summary(client) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "once upon a time"
    panel.max_new_tokens.value, panel.steps.value, panel.seed.value = "8", "4", "5"
    panel.generate_button.click()
    assert panel.wait(60)
    result = panel.result
    assert result is not None and result.steps == 4
    assert result.summary.splitlines()[0] in panel.view.status.value and panel.view.progress.value == 1.0
    assert "once upon a time" in panel.view.canvas.value and "yipyap-result" in panel.view.canvas.value
    assert not panel.generate_button.disabled and panel.stop_button.disabled
    same = client.generate("once upon a time", max_new_tokens=8, steps=4, seed=5)
    assert same.raw_text == result.raw_text


def test_blank_knobs_are_not_sent(client) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "x"
    assert panel.options() == {}
    assert panel.request().given() == {"prompt": "x"}  # no temperature 0, no steps: the model's defaults apply
    panel.temperature.value, panel.threshold.value = "0.5", "0.9"
    panel.cache.value, panel.remasking.value = "dual", "random"
    assert panel.request().given() == {"prompt": "x", "temperature": 0.5, "threshold": 0.9, "cache": "dual",
                                       "remasking": "random"}


def test_status_follows_the_run_and_the_decode_order_toggle(client) -> None:
    panel = TextGeneratorPanel(client)
    seen: list[str] = []
    panel.view.status.observe(lambda change: seen.append(change["new"]), names="value")
    panel.prompt.value = "the cat"
    panel.max_new_tokens.value, panel.steps.value, panel.seed.value = "8", "8", "1"
    assert panel.view.decode_order.disabled
    panel.generate_button.click()
    assert panel.wait(60)
    assert any("Starting" in value for value in seen)
    assert any("step 1/8" in value for value in seen)  # the first step is always drawn
    assert "tokens · 8 steps" in panel.view.status.value and "Starting" not in panel.view.status.value
    assert not panel.view.decode_order.disabled
    panel.view.decode_order.value = True
    assert "yipyap-decode-order" in panel.view.canvas.value and "<svg" in panel.view.canvas.value
    panel.view.decode_order.value = False
    assert "yipyap-result" in panel.view.canvas.value


def test_stop_cancels_keeps_the_partial_canvas_and_the_model_stays_usable(client, service) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "the cat"
    panel.max_new_tokens.value, panel.steps.value = "448", "448"
    stepped = threading.Event()
    panel.view.generation.observe(lambda change: change["new"] == 2 and stepped.set(), names="step")
    client.generate("x", max_new_tokens=2, steps=1)  # the model is loaded
    with HeldNetwork(service.manager.loaded_model.network, free=2) as held:  # still running when Stop comes
        panel.generate_button.click()
        assert panel.stop_button.disabled is False
        assert stepped.wait(60)
        held.wait_held(3)
        panel.stop_button.click()
    assert panel.wait(60)
    assert panel.result is None and panel.view.generation.state == "stopped"
    assert "stopped at step 3 of 448" in panel.view.status.value  # the step in flight at Stop, and no more
    assert panel.view.canvas.value.count("▒") > 0  # the partial canvas stays in view
    panel.max_new_tokens.value, panel.steps.value = "8", "4"
    panel.generate_button.click()
    assert panel.wait(60) and panel.result is not None


def test_errors_show_once_with_category_and_retry_hint(client) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "x"
    panel.seed.value = "abc"
    assert panel.run() is False
    assert "validation error: seed must be a whole number" in panel.view.status.value
    panel.seed.value = ""
    panel.max_new_tokens.value, panel.steps.value = "4", "8"
    panel.generate_button.click()
    assert panel.wait(60)
    assert panel.view.error is not None and panel.view.error.error_type == "validation"
    status = panel.view.status.value
    assert status.count("validation error") == 1 and "(retrying will not help)" in status
    assert "validation" not in panel.view.canvas.value


def test_infill_fixed_and_variable(client) -> None:
    panel = TextInfillerPanel(client)
    assert panel.max_new_tokens.description == "length (tokens)"
    panel.prefix.value, panel.suffix.value = "def f ( x ) :", "return x"
    panel.max_new_tokens.value, panel.steps.value, panel.seed.value = "6", "3", "1"
    panel.infill_button.click()
    assert panel.wait(60)
    assert panel.result is not None and len(panel.result.frames[-1].pieces) == 6
    assert panel.result.context.after == "return x"
    panel.mode.value = VARIABLE
    assert panel.max_new_tokens.description == "at most (tokens)"  # the label follows the mode
    panel.steps.value = ""
    assert panel.request().variable is True and panel.request().length is None
    panel.infill_button.click()
    assert panel.wait(60) and panel.result is not None and panel.view.error is None
    panel.suffix.value = ""
    assert panel.run() is False and panel.view.status.value.count("needs a suffix") == 1


def test_a_yes_no_knob_sends_a_boolean(client) -> None:
    panel = TextGeneratorPanel(client)
    panel.prompt.value = "x"
    panel.eos_early_stop.value = False
    assert panel.request().given() == {"prompt": "x", "eos_early_stop": False}
