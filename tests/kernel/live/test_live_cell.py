"""The cell renderer: `run_live`'s results and failures, and `%%diffuse` in a real ipykernel (the live display,
nbval-stable outputs, kernel interrupts)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_events import complete, steps

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.errors import GenerationError, ModelUnavailableError
from yipyap_jupyter.kernel.live.cell import run_live
from yipyap_jupyter.kernel.live.state import GenerationStopped
from yipyap_jupyter.kernel.render import Context
from yipyap_jupyter.service.events import ErrorEvent, StatusEvent, StepEvent

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory, tiny_llada_dir: Path):
    """A python3 kernel with the extension loaded and the test checkpoint loaded on the CPU."""
    from jupyter_client.manager import start_new_kernel

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        "YIPYAP_SETTINGS_PATH": str(tmp_path_factory.mktemp("kernel-settings") / "settings.json"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(REPO), startup_timeout=120)
    try:
        replies = execute(client, f"%load_ext yipyap_jupyter\n%diffuse load {tiny_llada_dir} --device cpu")
        assert [m for m in replies if m["msg_type"] == "error"] == []
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(client, code: str, until=None) -> list[dict]:
    """Run `code`; return its iopub messages up to idle. `until(messages)` may act mid-way (once)."""
    msg_id = client.execute(code)
    messages = collect(client, msg_id, until)
    reply(client, msg_id)
    return messages


def reply(client, msg_id: str) -> dict:
    """The execute_reply to request `msg_id`, past any other shell replies (wait_for_ready's extra kernel_info)."""
    skipped = []
    while True:
        message = client.get_shell_msg(timeout=120)
        if message["parent_header"].get("msg_id") == msg_id:
            return message["content"]
        skipped.append(message["msg_type"])
        assert len(skipped) < 100, skipped


def collect(client, msg_id: str, until=None, timeout: float = 300.0) -> list[dict]:
    """The iopub messages of request `msg_id` up to idle. `until(messages)` may act mid-way (once)."""
    messages: list[dict] = []
    acted = until is None
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"no idle within {timeout:g} s after {[m['msg_type'] for m in messages]}"
        message = client.get_iopub_msg(timeout=120)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            return messages
        messages.append(message)
        if not acted and until(messages):
            acted = True


def of_type(messages: list[dict], kind: str) -> list[dict]:
    return [m["content"] for m in messages if m["msg_type"] == kind]


def test_live_display_updates_in_place_and_gives_way_to_the_result(kernel) -> None:
    _, client = kernel
    messages = execute(client, "%%diffuse --seed 2 --steps 8 --max-new-tokens 16\nonce upon a time")
    shown, updates = of_type(messages, "display_data"), of_type(messages, "update_display_data")
    results = of_type(messages, "execute_result")
    assert of_type(messages, "error") == []
    assert len(shown) == 1 and shown[0]["data"] == {}  # nothing for nbval to compare, nothing left when saved
    display_id = shown[0]["transient"]["display_id"]
    assert all(u["transient"]["display_id"] == display_id for u in updates)
    canvases = [u for u in updates if 'class="yipyap-canvas"' in u["data"].get("text/html", "")]
    assert canvases, "the first step is always drawn"
    assert len(updates) <= 1 + 8 + 2  # the status line, at most one redraw per step, the last canvas, the result
    last_canvas = updates[-2]["data"]["text/plain"].splitlines()
    assert "▒" not in "\n".join(last_canvas[:-1])  # the last step is always drawn before the result
    assert of_type(messages, "clear_output") == [{"wait": True}]  # the result replaces the live display
    assert messages[-1]["msg_type"] == "execute_result" and len(results) == 1
    summary, options = results[0]["data"]["text/plain"].splitlines()[-2:]
    assert summary.startswith("16 tokens · 8 steps · ") and options.startswith("max new tokens 16 · steps 8 · ")


#: Run in the kernel before the interrupted cell: the network holds every pass after the first until the run is
#: cancelled (the interrupt cancels it), so the generation is still running when the interrupt comes, however fast
#: the machine is.
HOLD_UNTIL_CANCELLED = """
from held_network import HeldNetwork
from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.kernel.local_backend import LocalBackend

held = HeldNetwork(LocalBackend.shared().service.manager.loaded_model.network, free=1)
plain_cancel = CancelToken.cancel

def cancel_and_let_through(token):
    plain_cancel(token)
    held.open()

CancelToken.cancel = cancel_and_let_through
"""


def test_interrupt_stops_in_one_line_keeps_the_partial_result_and_the_model(kernel, tiny_llada_dir: Path) -> None:
    manager, client = kernel
    assert of_type(execute(client, HOLD_UNTIL_CANCELLED), "error") == []

    def interrupt_after_first_canvas(messages: list[dict]) -> bool:
        if any("step " in m["data"].get("text/plain", "") for m in of_type(messages, "update_display_data")):
            manager.interrupt_kernel()
            return True
        return False

    msg_id = client.execute("%%diffuse --seed 2 --steps 256 --max-new-tokens 256 --out partial\nonce upon a time")
    messages = collect(client, msg_id, until=interrupt_after_first_canvas)
    assert reply(client, msg_id)["status"] == "error"  # so "Run All" stops here
    errors = of_type(messages, "error")
    assert [e["ename"] for e in errors] == ["GenerationStopped"]
    (line,) = errors[0]["traceback"]
    # step 1 was shown; the step in flight when the interrupt came (1 or 2) is the last
    assert re.fullmatch(r"\x1b\[1;33mstopped at step [12] of 256\x1b\[0m", line), line
    assert of_type(messages, "stream") == []  # no traceback printed anywhere else
    assert of_type(execute(client, "CancelToken.cancel = plain_cancel; held.open()"), "error") == []
    settled = "''.join(f.text for f in partial.frames)"
    messages = execute(client, f"print(partial.steps < 256, partial.stopped_of, partial.text == {settled})")
    assert of_type(messages, "stream")[0]["text"] == "True 256 True\n"
    # %diffuse replay shows the stopped run's steps, the last one where it stopped, and names its model
    stopped_at = int(line.split("stopped at step ")[1].split(" ")[0])
    (replay,) = of_type(execute(client, "%diffuse replay"), "execute_result")
    assert replay["data"]["text/plain"] == f"<ReplayPanel: {stopped_at} steps of {tiny_llada_dir}>"
    messages = execute(client, "_.slider.max, _.canvas.value.count('step ' + str(_.slider.max) + '/256')")
    assert of_type(messages, "execute_result")[0]["data"]["text/plain"] == f"({stopped_at}, 1)"
    messages = execute(client, "%%diffuse --seed 2 --steps 4 --max-new-tokens 8 --out after\nthe cat sat")
    assert of_type(messages, "error") == []
    summary = of_type(messages, "execute_result")[0]["data"]["text/plain"].splitlines()[-2]
    assert summary.startswith("8 tokens · 4 steps")


def test_an_error_shows_once_in_one_line(kernel) -> None:
    _, client = kernel
    messages = execute(client, "%%diffuse --steps 64 --max-new-tokens 8\nhello")
    (error,) = of_type(messages, "error")
    assert len(error["traceback"]) == 1 and "validation error" in error["traceback"][0]
    assert of_type(messages, "clear_output") == [{"wait": True}]  # the live display gives way to the error
    assert not [u for u in of_type(messages, "update_display_data") if "error" in u["data"].get("text/plain", "")]


def test_no_stream_shows_only_the_result(kernel) -> None:
    _, client = kernel
    messages = execute(client, "%%diffuse --no-stream --seed 2 --steps 4 --max-new-tokens 8\nthe dog ran")
    assert of_type(messages, "display_data") == [] and of_type(messages, "update_display_data") == []
    assert "text/html" in of_type(messages, "execute_result")[0]["data"]


def test_run_live_returns_the_result_with_every_frame_and_the_options() -> None:
    events = [StatusEvent(message="starting"), *steps(4),
              complete(4, options={"steps": 4, "seed": 0, "cache": None}, block_origin=-3)]
    result = run_live(lambda cancel: iter(events), Context(before="p: "), live=False)
    assert result.text == "w0 w1 w2 w3" and result.raw_text == "w0 w1 w2 w3 " and result.block_origin == -3
    assert [f.step for f in result.frames] == [1, 2, 3, 4]
    assert result.filled == "p: w0 w1 w2 w3"
    assert repr(result).splitlines()[-2:] == ["4 tokens · 4 steps · 0.25 s · tiny · cpu", "steps 4 · seed 0"]


def test_error_event_raises_its_category() -> None:
    events = [StatusEvent(message="starting"),
              ErrorEvent(error_type="model_unavailable", message="no model loaded", retryable=False)]
    with pytest.raises(ModelUnavailableError, match="no model loaded"):
        run_live(lambda cancel: iter(events), Context(), live=False)


def test_a_bug_in_the_source_becomes_a_generation_error_without_its_text() -> None:
    def source(cancel: CancelToken) -> Iterator[StepEvent]:
        yield steps(2)[0]
        raise RuntimeError("secret prompt text")

    with pytest.raises(GenerationError) as failed:
        run_live(source, Context(), live=False)
    assert "secret" not in failed.value.message and "correlation id" in failed.value.message


def test_stream_ending_early_is_a_stop_with_the_partial_text() -> None:
    with pytest.raises(GenerationStopped) as stopped:
        run_live(lambda cancel: iter(steps(3)[:2]), Context(before="p"), live=False)
    assert str(stopped.value) == "stopped at step 2 of 3"
    partial = stopped.value.result
    assert (partial.text, partial.steps, partial.stopped_of) == ("w0 w1 ", 2, 3)
    assert partial.summary.startswith("stopped at step 2 of 3 · ")


def test_a_stopped_run_keeps_the_name_of_its_model() -> None:
    """The service's first status names the model, so a replay after an interrupt says whose steps it shows."""
    from yipyap_jupyter.kernel.panels import ReplayPanel

    events = [StatusEvent(message="Starting text generation...", model="tiny"), *steps(3)[:2]]
    with pytest.raises(GenerationStopped) as stopped:
        run_live(lambda cancel: iter(events), Context(before="p"), live=False)
    assert stopped.value.result.model == "tiny"
    assert repr(ReplayPanel(stopped.value.result)) == "<ReplayPanel: 2 steps of tiny>"
