"""`scripts/train_tiny.py` end to end on a miniature configuration: seeded, resumable, exported as shipped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import tiny_data
import torch

SCRIPTS = Path(tiny_data.__file__).parent  # on sys.path through this folder's conftest

MINIATURE = [
    "--steps", "6", "--ar-steps", "2", "--infill-steps", "2", "--warmup", "2", "--seed", "3", "--threads", "1",
    "--vocab-size", "300", "--d-model", "32", "--n-layers", "1", "--n-heads", "2", "--mlp-hidden", "64",
    "--seq-len", "48", "--batch-size", "4", "--infill-rows", "1", "--infill-steps-rows", "2",
]  # fmt: skip


def _train(*args: str | Path) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "train_tiny.py"), *MINIATURE, *map(str, args)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    return done.stdout


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "last.pt", weights_only=False)["model"]


def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one_and_exports_them(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from yipyap_jupyter.engine.checkpoint.weights import load_network

    straight, split, export = tmp_path / "straight", tmp_path / "split", tmp_path / "export"
    _train("--out", straight, "--no-export")
    shutil.copytree(straight / "tokenizer", split / "tokenizer")  # the tokenizer is trained once per run directory
    first = _train("--out", split, "--stop-step", "3", "--no-export")
    assert "stopped at step 3" in first
    second = _train("--out", split, "--resume", "--export-dir", export)
    assert "resumed at step 3" in second and "stopped at step 8" in second

    expected, resumed = _weights(straight), _weights(split)
    assert expected.keys() == resumed.keys()
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)

    network = load_network(export, dtype=torch.float32)
    assert all(
        torch.equal(param, expected[name].half().float()) for name, param in network.state_dict().items()
    )
    tokenizer = AutoTokenizer.from_pretrained(str(export))
    assert tokenizer.decode(tokenizer("def f(x):\n    return x\n")["input_ids"]) == "def f(x):\n    return x\n"
    meta = json.loads((export / "training.json").read_text())
    assert meta["steps"] == meta["planned_steps"] == 8 and meta["seed"] == 3
