"""The block cache against the recomputing loop, side by side, for both block families (LLaDA 2.x, SDAR).

Random networks of about 30M parameters in the released checkpoints' shapes (LLaDA2:
a dense first layer then mixtures of 16 experts, 2 per token and one shared; SDAR:
Qwen3 layers) generate the same prompt with `cache="prefix"` (committed blocks' keys and
values kept) and `cache="none"` (the official loop: the canvas up to the current block
recomputed every step), alternating, and the benchmark prints the median wall times, the
speed-up, the forward passes, how many tokens the two runs share, and the share of the
cached run's time spent outside the network's forward passes (the sampler's own cost).
A benchmark, not a test.

By default 256 tokens and 5 runs of each contender (`--runs`), so a median is never one noisy run:
one run of both families took 100 s here (the recomputing loop 76 s of it) while a training job
and tests kept both cores busy, so the default takes about 10 minutes on such a machine. At 1024
tokens the recomputing loop takes about ten times as long again: ask for it by name.

    python benchmarks/bench_block.py                          # 256 tokens, 5 runs, 1 thread
    python benchmarks/bench_block.py --tokens 256 1024 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yipyap_jupyter.engine.families.llada2.config import LLaDA2Config
from yipyap_jupyter.engine.families.llada2.network import LLaDA2Model
from yipyap_jupyter.engine.families.llada2.sampler import llada2_program
from yipyap_jupyter.engine.families.sdar.network import SDARConfig, SDARModel
from yipyap_jupyter.engine.families.sdar.sampler import sdar_program
from yipyap_jupyter.engine.runtime.batch import DecodingBatch
from yipyap_jupyter.engine.samplers.base import Program, SamplerStep

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' random-network helpers
from block_checkpoints import liven

VOCAB = 8192
MASK = VOCAB - 1
EOS = VOCAB - 2  # never predicted (see `_lively`): every run writes all its tokens
LLADA2 = dict(
    model_type="llada2_moe", vocab_size=VOCAB, hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
    num_attention_heads=8, num_key_value_heads=2, head_dim=64, use_qkv_bias=False, use_bias=False,
    use_qk_norm=True, rms_norm_eps=1e-6, rope_theta=600000.0, partial_rotary_factor=0.5, num_experts=16,
    num_shared_experts=1, num_experts_per_tok=2, n_group=4, topk_group=2, routed_scaling_factor=2.5,
    moe_intermediate_size=256, first_k_dense_replace=1,
)
SDAR = dict(
    model_type="sdar", vocab_size=VOCAB, hidden_size=512, intermediate_size=1536, num_hidden_layers=6,
    num_attention_heads=8, num_key_value_heads=4, head_dim=64, rms_norm_eps=1e-6, rope_theta=1e6, block_size=8,
)


class TimedNetwork(nn.Module):
    """The network, with the wall time of its forward passes added up."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.seconds = 0.0
        self.passes = 0

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        start = time.perf_counter()
        logits = self.network(*args, **kwargs)
        self.seconds += time.perf_counter() - start
        self.passes += 1
        return logits


def _lively(network: nn.Module) -> nn.Module:
    """A random network whose predictions vary and are often sure (the tests' `liven`), never the mask or the end."""
    liven(network, head=24.0)

    def no_mask_or_end(module: nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        logits[..., [MASK, EOS]] = torch.finfo(logits.dtype).min
        return logits

    network.register_forward_hook(no_mask_or_end)
    return network.eval()


def _families() -> dict[str, tuple[nn.Module, Callable[[torch.Tensor, str], Program]]]:
    torch.manual_seed(0)
    llada2 = _lively(LLaDA2Model(LLaDA2Config.from_dict(LLADA2)))
    sdar = _lively(SDARModel(SDARConfig.from_dict(SDAR)))
    return {
        "llada2 (block 32, threshold 0.95)": (llada2, lambda canvas, cache: llada2_program(
            canvas, mask_id=MASK, eos_id=EOS, block_length=32, steps=32, threshold=0.95, cache=cache)),
        "sdar (block 8, dynamic 0.85)": (sdar, lambda canvas, cache: sdar_program(
            canvas, mask_id=MASK, stop_ids=frozenset({EOS}), block_length=8, steps=8, threshold=0.85, cache=cache)),
    }


def _run(network: TimedNetwork, program: Program) -> tuple[float, float, int, list[int]]:
    """(wall seconds, seconds in forward passes, passes, the final canvas) of one generation.

    The program runs in a `DecodingBatch` of one row stepped on this thread: what the sampler
    costs beside the network, without the hop to the engine thread (`bench_engine` measures that).
    """
    network.seconds, network.passes = 0.0, 0
    batch = DecodingBatch(network)
    row = batch.add(program)
    start = time.perf_counter()
    while not row.done:
        batch.step()
    seconds = time.perf_counter() - start
    steps = [item for item in row.take() if isinstance(item, SamplerStep)]
    return seconds, network.seconds, network.passes, steps[-1].canvas.tolist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, nargs="+", default=[256], help="new tokens, one or more lengths")
    p.add_argument("--prompt", type=int, default=45, help="prompt tokens (whole blocks and a tail)")
    p.add_argument("--runs", type=int, default=5, help="runs of each contender (the median is shown)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--family", choices=["llada2", "sdar"], nargs="+", default=["llada2", "sdar"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    prompt = torch.randint(0, VOCAB - 2, (1, args.prompt), generator=torch.Generator().manual_seed(1))
    print(f"{args.device} ({args.threads} threads, {args.dtype}), prompt {args.prompt} tokens, {args.runs} runs each, "
          "alternating; times are medians")
    print(f"{'family':<34} {'tokens':>6} {'none s':>8} {'prefix s':>8} {'speed-up':>8} {'passes':>6} "
          f"{'same tokens':>11} {'outside forward':>15}")
    for name, (network, program) in _families().items():
        if name.split()[0] not in args.family:
            continue
        timed = TimedNetwork(network.to(args.device, dtype))
        parameters = sum(t.numel() for t in network.parameters())
        with torch.inference_mode():
            for tokens in args.tokens:
                canvas = torch.cat([prompt, torch.full((1, tokens), MASK)], dim=1).to(args.device)
                _run(timed, program(canvas, "prefix"))  # warm-up
                runs: dict[str, list[tuple[float, float, int, list[int]]]] = {"none": [], "prefix": []}
                for _ in range(args.runs):
                    for cache in runs:
                        runs[cache].append(_run(timed, program(canvas, cache)))
                none, prefix = (statistics.median(r[0] for r in runs[c]) for c in ("none", "prefix"))
                outside = statistics.median((r[0] - r[1]) / r[0] for r in runs["prefix"])
                same = sum(a == b for a, b in zip(runs["none"][0][3], runs["prefix"][0][3], strict=True))
                print(f"{name:<34} {tokens:>6} {none:>8.2f} {prefix:>8.2f} {none / prefix:>7.1f}x "
                      f"{runs['prefix'][0][2]:>6} {same / canvas.shape[1]:>11.1%} {outside:>15.1%}"
                      f"   ({parameters / 1e6:.0f}M parameters)")


if __name__ == "__main__":
    main()
