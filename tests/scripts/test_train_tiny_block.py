"""`scripts/train_tiny_block.py` on a miniature configuration: seeded, resumable, exported in SDAR's format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tiny_data
import torch

SCRIPTS = Path(tiny_data.__file__).parent  # on sys.path through this folder's conftest

MINIATURE = [
    "--steps", "6", "--ar-steps", "2", "--warmup", "2", "--seed", "3", "--hidden-size", "32", "--layers", "1",
    "--heads", "2", "--kv-heads", "1", "--intermediate-size", "64", "--seq-len", "32", "--batch-size", "3",
]  # fmt: skip


def _train(*args: str | Path) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / "train_tiny_block.py"), *MINIATURE, *map(str, args)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    return done.stdout


def test_a_resumed_run_ends_where_an_uninterrupted_one_does_and_exports_a_loadable_sdar_checkpoint(
    tmp_path: Path,
) -> None:
    from yipyap_jupyter.engine.checkpoint.weights import load_network
    from yipyap_jupyter.engine.families import detect
    from yipyap_jupyter.engine.families.sdar.network import SDARModel

    straight, split, export = tmp_path / "straight", tmp_path / "split", tmp_path / "export"
    _train("--out", straight, "--no-export")
    assert "stopped at step 3" in _train("--out", split, "--stop-step", "3", "--no-export")
    second = _train("--out", split, "--resume", "--export-dir", export)
    assert "resumed at step 3" in second and "stopped at step 6" in second
    expected = torch.load(straight / "last.pt", weights_only=False)["model"]
    resumed = torch.load(split / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)

    assert detect(export).name == "sdar"
    network = load_network(export, dtype=torch.float32)
    assert isinstance(network, SDARModel) and network.config.block_size == 4
    assert all(torch.equal(param, expected[name].half().float()) for name, param in network.state_dict().items())
    meta = json.loads((export / "training.json").read_text())
    assert meta["steps"] == meta["planned_steps"] == 6
    assert meta["training_vs_shipped_forward_max_gap"] < 1e-4  # training attends as the shipped network does
    assert not export.with_name("export.partial").exists()


def test_the_training_mask_is_block_diffusion() -> None:
    from train_tiny_block import block_diffusion_mask

    mask = block_diffusion_mask(8, 4)  # [noisy 0..7 | clean 0..7], blocks {0..3}, {4..7}
    noisy, clean = slice(0, 8), slice(8, 16)
    assert mask[noisy, noisy][1].tolist() == [True] * 4 + [False] * 4  # its own block, both ways
    assert mask[noisy, clean][1].tolist() == [False] * 8  # nothing clean in the first block
    assert mask[noisy, clean][5].tolist() == [True] * 4 + [False] * 4  # the clean blocks before it
    assert mask[clean, clean][1].tolist() == [True] * 4 + [False] * 4  # clean: block-causal
    assert not mask[clean, noisy].any()


@pytest.mark.parametrize(
    ("prompt", "generation", "parses"),
    [
        ("def f(x):\n", "    return x\n", True),
        ("def f(x):\n", "    return x\n    y = (", True),  # cut at the last line break
        ("def f(x):\n", "    if x:\n", True),  # one `pass` closes the open block
        ("def f(x):\n", "    return x\n  y = 1\n", False),
        ("def f(x):\n", '    """Doc\n', False),  # an open string stays open
        ("def f(x):\n", "", False),  # the prompt alone is not a continuation that parses
    ],
)
def test_a_continuation_parses_as_the_model_card_counts_it(prompt: str, generation: str, parses: bool) -> None:
    from eval_continuations import score

    assert score(prompt, generation)["parses"] is parses


def test_repeated_lines_do_not_count_as_distinct() -> None:
    from eval_continuations import score

    result = score("class A:\n", "    x = 1\n    x = 1\n    y = 2\n")
    assert (result["lines"], result["distinct_lines"], result["characters"]) == (3, 2, 9)
