"""The linters as tests: `ruff check` and `mypy` (configured in pyproject.toml) must pass.

Both run as subprocesses from the repository root with this interpreter, so the plain
test command runs them too; a failure shows the tool's own report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF_PATHS = ["yipyap_jupyter", "tests", "benchmarks", "scripts"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{' '.join(result.args[1:])} exited {result.returncode}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_tool_is_installed(tool: str) -> None:
    result = _run(tool, "--version")
    assert result.returncode == 0, f"{tool} is missing: install the test extra ({result.stderr.strip()})"


@pytest.mark.timeout(660)  # the tool has 600 s
def test_ruff_check_passes() -> None:
    _assert_clean(_run("ruff", "check", *RUFF_PATHS))


@pytest.mark.timeout(660)  # the tool has 600 s
def test_mypy_passes() -> None:
    _assert_clean(_run("mypy"))
