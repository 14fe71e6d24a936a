"""`yipyap-diffuse` as a user runs it: a real process on the shipped `tiny` model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from held_network import HeldChild
from processes import finish, wait_for_line

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, tmp_path: Path, gate: HeldChild | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "YIPYAP_SETTINGS_PATH": str(tmp_path / "settings.json"), "OMP_NUM_THREADS": "1"}
    if gate is not None:
        env = gate.env(env)
    return subprocess.Popen([sys.executable, "-m", "yipyap_jupyter", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_ctrl_c_as_in_a_terminal)


def _ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's default action in the child, as a terminal gives it: a test run in the background
    (`nohup ... &` from a script) inherits SIGINT ignored, and Python keeps an ignored SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_prints_where_it_stopped_and_exits_130(tmp_path: Path) -> None:
    gate = HeldChild(tmp_path / "gate")
    gate.hold(free=2)  # the load's check pass and step 1 go through; step 2 waits
    process = cli("def main():", "--model", "tiny", "--max-new-tokens", "200", "--steps", "200", tmp_path=tmp_path,
                  gate=gate)
    assert process.stderr is not None
    wait_for_line(process, process.stderr, "1/200")  # the first step line
    gate.wait_held(3)  # so the generation is running when Ctrl+C comes, on a machine of any speed
    process.send_signal(signal.SIGINT)
    gate.step_until(lambda: process.poll() is not None)  # the signal lands while steps go one at a time
    gate.open()
    out, err = finish(process)
    assert process.returncode == 130
    assert err.rstrip().splitlines()[-1].startswith("· stopped at step ") and err.rstrip().endswith(" of 200")
    assert "Traceback" not in err and "terminate called" not in err and out == ""


def test_variable_without_a_suffix_is_a_usage_error(tmp_path: Path) -> None:
    process = cli("def main():", "--variable", tmp_path=tmp_path)
    out, err = finish(process)
    assert process.returncode == 2 and out == ""
    assert err.count("needs a suffix") == 1 and err.startswith("usage: yipyap-diffuse")


def test_a_failure_is_one_line_with_its_category(tmp_path: Path) -> None:
    process = cli("def main():", "--model", "no-such-model", tmp_path=tmp_path)
    out, err = finish(process)
    assert process.returncode == 1 and out == ""
    assert err.splitlines()[-1].startswith("error · model_unavailable error: ") and "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["--model", "tiny", "--block-length", "7"],
    ["--model", "tiny", "--alg", "entropy"],  # a Dream option, and tiny is a LLaDA model
    ["--model", "tiny", "--max-new-tokens", "8", "--steps", "16"],
    ["--suffix", "x", "--variable", "--cache", "dual"],  # infill: on tiny
    ["--max-new-tokens", "1024"],  # past tiny-block's context, found only once the model is loaded
    ["--remasking", "random"],  # a LLaDA strategy, and the default model is an SDAR one
])
def test_every_validation_error_is_a_usage_error(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever refuses a value (the arguments, the request type, the plan, the model), the CLI exits 2."""
    from yipyap_jupyter.__main__ import main

    monkeypatch.setenv("YIPYAP_SETTINGS_PATH", str(tmp_path / "settings.json"))
    with pytest.raises(SystemExit) as exited:
        main(["def main():", *args])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""
    assert err.splitlines()[-1].startswith("yipyap-diffuse: error: ") and "usage: yipyap-diffuse" in err
    assert "Traceback" not in err
