"""The README's set-up is what CI runs, and it tells a newcomer how to keep PyTorch on the CPU."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def setup_commands() -> list[str]:
    """The two commands of the README's set-up section, as written."""
    section = README.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", section)
    assert len(commands) >= 2, "the set-up section lost its commands"
    return commands[:2]


def test_ci_runs_the_readme_commands_as_written() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in setup_commands():
        assert command in ci, f"README command not run verbatim by .ci/run: {command}"


def test_the_readme_gives_the_cpu_only_route_for_torch() -> None:
    install = setup_commands()[0]
    pinned = re.search(r"torch==([\d.]+)", install)
    assert pinned is not None
    assert f"pip install torch=={pinned.group(1)} --index-url https://download.pytorch.org/whl/cpu" in README
    assert "nvidia-*" in README  # says what the public index gives on Linux
