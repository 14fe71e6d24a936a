"""Loading checkpoints: values survive a dtype change, and a bf16 checkpoint loads as float32 without a second copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from yipyap_jupyter.engine.checkpoint.weights import load_network, save_checkpoint
from yipyap_jupyter.engine.families.llada.config import LLaDAConfig
from yipyap_jupyter.engine.families.llada.network import LLaDAModel

# Runs in a fresh process: reset the peak resident size (Linux `clear_refs`), load, report the growth.
# The first network build maps torch code pages the process keeps whatever it loads, so it comes first.
MEASURE = """
import json, sys, torch
from pathlib import Path
from yipyap_jupyter.engine.checkpoint.weights import build_network, load_network

def status(field):
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))

directory = Path(sys.argv[1])
with torch.device("meta"):
    build_network(json.loads((directory / "config.json").read_text()))
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before = status("VmRSS:")
network = load_network(directory, dtype=torch.float32)
weights = sum(p.numel() * p.element_size() for p in network.parameters())
print(json.dumps({"growth": status("VmHWM:") - before, "weights": weights}))
"""


def _bf16_checkpoint(directory: Path, d_model: int, layers: int, vocab: int) -> Path:
    torch.manual_seed(0)
    config = LLaDAConfig(d_model=d_model, n_heads=4, n_layers=layers, mlp_hidden_size=4 * d_model, vocab_size=vocab,
                         mask_token_id=vocab - 1, eos_token_id=vocab - 2, pad_token_id=vocab - 2)
    return save_checkpoint(LLaDAModel(config), directory, dtype=torch.bfloat16)


def test_a_bf16_checkpoint_loads_as_float32_with_the_stored_values(tmp_path: Path) -> None:
    directory = _bf16_checkpoint(tmp_path, d_model=32, layers=2, vocab=64)
    stored = load_file(str(directory / "model.safetensors"))
    network = load_network(directory, dtype=torch.float32)
    state = network.state_dict()
    assert all(state[name].dtype == torch.float32 and torch.equal(state[name], t.float()) for name, t in stored.items())
    assert next(load_network(directory).parameters()).dtype == torch.bfloat16  # the checkpoint's own dtype


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak resident size is read from Linux /proc")
def test_loading_converts_tensor_by_tensor_without_a_second_copy(tmp_path: Path) -> None:
    directory = _bf16_checkpoint(tmp_path, d_model=384, layers=6, vocab=16384)  # ~27M parameters, ~53 MB file
    run = subprocess.run([sys.executable, "-c", MEASURE, str(directory)], capture_output=True, text=True, check=True)
    measured = json.loads(run.stdout)
    # the float32 weights plus one tensor in flight; a second full copy, or the file's pages
    # mapped beside the weights, would be 1.5x and more
    assert measured["growth"] <= 1.2 * measured["weights"], measured


def test_loading_draws_no_initial_weights_and_imports_no_compiler() -> None:
    """A fresh process's first load skips what it would throw away: drawing initial weights on the meta device
    imports torch._dynamo (about a second of the first generation). Module constructors draw again afterwards."""
    code = ("import sys, torch\n"
            "from yipyap_jupyter.constants import TINY_MODEL_DIR\n"
            "from yipyap_jupyter.engine.checkpoint.weights import load_network\n"
            "load_network(TINY_MODEL_DIR)\n"
            "print('torch._dynamo' in sys.modules, torch.nn.Linear(4, 4).weight.abs().sum().item() > 0)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert run.stdout.split() == ["False", "True"], run.stdout + run.stderr
