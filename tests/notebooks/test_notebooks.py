"""The notebooks in `notebooks/` run top to bottom and reproduce their stored outputs (nbval, strict).

nbval runs in a child pytest so that its kernels get the environment of `nbenv.notebook_env`:
a private settings file, an empty offline Hugging Face cache, and this checkout on the path.
The same check by hand: `pytest --nbval --nbval-sanitize-with tests/notebooks/sanitize.cfg notebooks/`;
refresh the stored outputs with `python tests/notebooks/refresh_outputs.py`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nbenv import NOTEBOOKS, REPO, notebook_env

SANITIZE = Path(__file__).with_name("sanitize.cfg")


@pytest.mark.timeout(960)  # the child pytest has 900 s
def test_notebooks_reproduce_their_outputs(tmp_path: Path) -> None:
    notebooks = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name[:2] for p in notebooks] == ["01", "02", "03", "04", "05", "06"]
    run = subprocess.run(  # no:randomly: a notebook's cells run in order, whatever plugins the suite has
        [sys.executable, "-m", "pytest", "--nbval", "--nbval-sanitize-with", str(SANITIZE),
         "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "--rootdir", str(REPO), *map(str, notebooks)],
        cwd=tmp_path, env=notebook_env(tmp_path), capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert not (tmp_path / "config" / "yipyap_jupyter" / "settings.json").exists(), "a notebook wrote the user's settings"
    assert not list((tmp_path / "tmp").glob("yipyap-*")), "a notebook left its files in the temp directory"
