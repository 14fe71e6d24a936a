"""The environment the notebooks run in under test: private settings, an empty offline hub cache, this checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"


def notebook_env(scratch: Path) -> dict[str, str]:
    """`os.environ` plus what makes a notebook run reproducible, with its files under `scratch`."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "YIPYAP_SETTINGS_PATH": str(scratch / "settings.json"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(scratch / "hf-cache"),
        "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
        "OMP_NUM_THREADS": "1",
    }
