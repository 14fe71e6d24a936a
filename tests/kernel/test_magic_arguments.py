"""`%%diffuse` / `%diffuse` option handling in a real IPython shell: usage errors, never tracebacks."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from yipyap_jupyter.errors import ValidationError
from yipyap_jupyter.kernel.magics import (
    DEFAULT_MARKER,
    cell_parser,
    line_parser,
    parse_changes,
    split_infill,
)


def run(ipython, source: str):
    result = ipython.run_cell(source)
    return result.error_in_exec


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--steps zero", "argument --steps: invalid int value: 'zero'"),
        ("--device tpu", "argument --device: invalid choice: 'tpu'"),
        ("--cache full", "argument --cache: invalid choice: 'full'"),
        ("--out 1x", "argument --out: '1x' is not a Python variable name"),
        ("--colour red", "unrecognized arguments: --colour red"),
        ("--model 'unclosed", "cannot parse the options"),
    ],
)
def test_bad_cell_options_are_usage_errors(ipython, capsys, line: str, message: str) -> None:
    error = run(ipython, f"%%diffuse {line}\nOnce upon a time")
    assert isinstance(error, UsageError)
    assert message in str(error)
    if "parse" not in message:
        assert str(error).startswith("usage: %%diffuse")
    assert "Traceback" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "field"),
    [("--steps 0", "steps"), ("--temperature -1", "temperature"), ("--threshold 2", "threshold")],
)
def test_bad_values_are_the_request_types_validation_errors(ipython, capsys, line: str, field: str) -> None:
    error = run(ipython, f"%%diffuse {line}\nOnce upon a time")
    assert isinstance(error, ValidationError) and error.message.startswith(f"{field}: ")
    out = capsys.readouterr().out
    assert out.count("validation error") == 1 and "Traceback" not in out


def test_variable_without_a_suffix_is_a_validation_error_shown_once(ipython, capsys) -> None:
    error = run(ipython, f"%%diffuse --variable\ndef f(x):\n    {DEFAULT_MARKER}")
    assert isinstance(error, ValidationError) and "needs a suffix" in error.message
    assert capsys.readouterr().out.count("validation error") == 1


def test_infill_needs_exactly_one_marker(ipython) -> None:
    error = run(ipython, "%%diffuse --infill\ndef f(x):\n    return x\n")
    assert isinstance(error, UsageError)
    assert str(error) == f"%%diffuse --infill needs exactly one {DEFAULT_MARKER!r} marker in the cell; found none"
    error = run(ipython, "%%diffuse --variable --marker @@\na @@ b @@ c")
    assert str(error) == "%%diffuse --infill needs exactly one '@@' marker in the cell; found 2"


def test_empty_prompt_is_a_usage_error(ipython) -> None:
    assert "needs a prompt" in str(run(ipython, "%%diffuse --seed 1\n   \n"))


def test_line_magic_subcommands(ipython) -> None:
    assert "invalid choice: 'frobnicate'" in str(run(ipython, "%diffuse frobnicate"))
    assert "the following arguments are required" in str(run(ipython, "%diffuse"))
    error = run(ipython, "%diffuse load")
    assert str(error).startswith("usage: %diffuse load")
    assert "expected key=value, got 'max_new_tokens'" in str(run(ipython, "%diffuse settings max_new_tokens"))


def test_help_prints_and_returns_nothing(ipython, capsys) -> None:
    assert run(ipython, "%%diffuse --help\nx") is None
    out = capsys.readouterr().out
    assert "usage: %%diffuse" in out and "--max-new-tokens N" in out and DEFAULT_MARKER in out


def test_parsers_read_every_option() -> None:
    args = cell_parser().parse_args(
        "--model tiny --steps 8 --max-new-tokens 16 --block-length 8 --temperature 0.5 --seed 3 --threshold 0.9 "
        "--cache dual --remasking random --alg entropy --device cpu --infill --marker ## --variable --no-stream "
        "--out r".split()
    )
    assert (args.threshold, args.cache, args.remasking, args.alg) == (0.9, "dual", "random", "entropy")
    assert (args.model, args.steps, args.max_new_tokens, args.block_length) == ("tiny", 8, 16, 8)
    assert (args.temperature, args.seed, args.device, args.marker, args.out) == (0.5, 3, "cpu", "##", "r")
    assert args.infill and args.variable and args.no_stream
    load = line_parser().parse_args(["load", "llada-8b-instruct", "--device", "cuda"])
    assert (load.command, load.model, load.device) == ("load", "llada-8b-instruct", "cuda")


def test_split_and_settings_words() -> None:
    assert split_infill(f"a {DEFAULT_MARKER} b", DEFAULT_MARKER) == ("a ", " b")
    assert parse_changes(["auto_trim=false", "max_new_tokens = 8"]) == {"auto_trim": "false", "max_new_tokens": "8"}


@pytest.mark.parametrize("word", ["", "None", "null", "default"])
def test_a_setting_resets_to_its_default(word: str) -> None:
    assert parse_changes([f"max_new_tokens={word}", f"auto_trim={word}", f"request_timeout={word}"]) == {
        "max_new_tokens": None, "auto_trim": True, "request_timeout": 300.0}
