"""The environment the notebooks run in under test: private config and temp dirs, an empty offline hub cache, this checkout.

The notebooks see no settings override: what they would write into a user's settings file (or leave in the
temp directory) lands in the scratch directory, where `test_notebooks.py` looks for it.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


def notebook_env(scratch: Path) -> dict[str, str]:
    """`os.environ` plus what makes a notebook run reproducible, with its files under `scratch`."""
    (scratch / "tmp").mkdir(exist_ok=True)
    environ = {name: value for name, value in os.environ.items() if name != "YIPYAP_SETTINGS_PATH"}
    return {
        **environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(scratch / "config"),  # where a user's settings file lives
        "TMPDIR": str(scratch / "tmp"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(scratch / "hf-cache"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "OMP_NUM_THREADS": "1",
    }
