"""`%%diffuse` and `%diffuse ...` end to end in a real IPython shell, over a real local service."""

from __future__ import annotations

from yipyap_jupyter.errors import DiffusionError
from yipyap_jupyter.kernel.answers import ModelTable, ModelView, Notice, SettingsView
from yipyap_jupyter.kernel.magics import DEFAULT_MARKER
from yipyap_jupyter.kernel.panels import ReplayPanel, TextLLMPanel
from yipyap_jupyter.kernel.result import DiffusionResult

OPTIONS = "--seed 3 --steps 4 --max-new-tokens 8"


def run(ipython, source: str):
    result = ipython.run_cell(source)
    return result.result, result.error_in_exec


def test_cell_returns_and_stores_the_result(ipython, magics, client, capsys) -> None:
    value, error = run(ipython, f"%%diffuse {OPTIONS} --out story\nonce upon a time")
    assert error is None
    assert isinstance(value, DiffusionResult) and ipython.user_ns["story"] is value
    assert value.steps == 4 and len(value.frames) == 4 and len(value.history) == 4
    assert value.context.before == "once upon a time"
    assert capsys.readouterr().out.rstrip().endswith(value.summary)
    again = client.generate("once upon a time", seed=3, steps=4, max_new_tokens=8)
    assert (again.raw_text, again.history) == (value.raw_text, value.history)


def test_fixed_and_variable_infill(ipython, magics) -> None:
    value, error = run(ipython, f"%%diffuse --infill {OPTIONS}\ndef f ( x ) : {DEFAULT_MARKER} return x")
    assert error is None
    assert (value.context.before, value.context.after) == ("def f ( x ) : ", " return x")
    assert len(value.frames[-1].pieces) == 8
    cell = "%%diffuse --variable --marker @@ --seed 1 --max-new-tokens 8 --no-stream\nif x @@ else y"
    value, error = run(ipython, cell)
    assert error is None and (value.context.before, value.context.after) == ("if x ", " else y")


def test_model_commands(ipython, magics, tiny_llada_dir) -> None:
    loaded, error = run(ipython, f"%diffuse load {tiny_llada_dir} --device cpu")
    assert error is None and isinstance(loaded, ModelView)
    assert loaded.info.loaded and loaded.info.device == "cpu" and "[local backend]" in repr(loaded)
    table, _ = run(ipython, "%diffuse models")
    assert isinstance(table, ModelTable)
    assert [m.id for m in table.models if m.loaded] == [str(tiny_llada_dir)]
    current, _ = run(ipython, "%diffuse current")
    assert current.info.id == str(tiny_llada_dir)
    notice, _ = run(ipython, "%diffuse unload")
    assert isinstance(notice, Notice) and repr(notice) == f"Unloaded {tiny_llada_dir}."
    assert repr(run(ipython, "%diffuse current")[0]).startswith("No model loaded.")
    value, error = run(ipython, f"%%diffuse {OPTIONS}\nthe cat sat")  # loads the default model again
    assert error is None and value.model == str(tiny_llada_dir)


def test_failures_show_category_once_not_traceback(ipython, magics, capsys) -> None:
    _, error = run(ipython, f"%%diffuse --model no-such-model {OPTIONS}\nhello")
    assert isinstance(error, DiffusionError) and error.error_type == "model_unavailable"
    _, error = run(ipython, "%%diffuse --steps 64 --max-new-tokens 8\nhello")
    assert isinstance(error, DiffusionError) and error.error_type == "validation"
    shown = capsys.readouterr()
    lines = (shown.out + shown.err).splitlines()
    assert len([line for line in lines if "model_unavailable error" in line]) == 1
    assert len([line for line in lines if "validation error" in line]) == 1
    assert "Traceback" not in shown.out + shown.err
    assert run(ipython, f"%%diffuse {OPTIONS}\nthe model still works")[1] is None


def test_settings_round_trip(ipython, magics, service) -> None:
    view, error = run(ipython, "%diffuse settings max_new_tokens=12 auto_trim=false")
    assert error is None and isinstance(view, SettingsView) and view.saved
    assert service.settings().max_new_tokens == 12 and service.settings().auto_trim is False
    _, error = run(ipython, "%diffuse settings max_new_tokens=0")
    assert isinstance(error, DiffusionError) and error.error_type == "validation"
    _, error = run(ipython, "%diffuse settings colour=red")
    assert isinstance(error, DiffusionError) and error.error_type == "validation"
    assert service.settings().max_new_tokens == 12
    value, _ = run(ipython, "%diffuse settings")
    assert not value.saved and ("max_new_tokens", "12") in value.rows()
    _, error = run(ipython, "%diffuse settings max_new_tokens= auto_trim=default")
    assert error is None and service.settings().max_new_tokens is None and service.settings().auto_trim is True


def test_replay_and_panel(ipython, magics) -> None:
    _, error = run(ipython, "%diffuse replay")
    assert "nothing to replay yet" in str(error)
    run(ipython, f"%%diffuse {OPTIONS}\nonce upon a time")
    replay, error = run(ipython, "%diffuse replay")
    assert error is None and isinstance(replay, ReplayPanel)
    assert replay.slider.max == 4 and "step 4/4" in replay.canvas.value
    replay.slider.value = 1
    assert "step 1/4" in replay.canvas.value
    panel, _ = run(ipython, "%diffuse panel")
    assert isinstance(panel, TextLLMPanel) and panel.client is magics.client
