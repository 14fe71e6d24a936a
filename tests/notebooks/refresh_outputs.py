"""Re-execute the notebooks in place with nbclient, storing the outputs nbval compares against.

Run after changing a notebook, the magics' rendering, or the `tiny` model:
`python tests/notebooks/refresh_outputs.py [01-quickstart.ipynb ...]` (default: all of them).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nbenv import NOTEBOOKS, notebook_env  # noqa: E402


def refresh(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)


def main(names: list[str]) -> None:
    paths = [NOTEBOOKS / name for name in names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="yipyap-notebooks-") as scratch:
        os.environ.clear()
        os.environ.update(notebook_env(Path(scratch)))  # the kernels inherit this environment
        for path in paths:
            refresh(path)
            print("refreshed", path.name, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
