"""CPU speed of the embedded `tiny` model: 64 new tokens in 32 LLaDA steps (target: under 2 s).

A benchmark, not a test: it prints median wall time and tokens/s over several
runs after one warm-up run, for the shipped weights loaded in float32.

    python benchmarks/bench_tiny_cpu.py --runs 7 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from yipyap_jupyter.constants import TINY_MODEL_DIR
from yipyap_jupyter.engine.checkpoint import load_network
from yipyap_jupyter.engine.families.llada.sampler import llada_sample
from yipyap_jupyter.engine.tokenizer import load_tokenizer

PROMPT = 'def parse_args(argv=None):\n    """Parse the command line."""\n'


def run_once(network, canvas: torch.Tensor, mask_id: int, steps: int, block_length: int) -> float:
    start = time.perf_counter()
    for _ in llada_sample(network, canvas, mask_id=mask_id, steps=steps, block_length=block_length):
        pass
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path(TINY_MODEL_DIR))
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    tokenizer = load_tokenizer(Path(args.model))
    network = load_network(args.model, dtype=getattr(torch, args.dtype))
    mask_id = tokenizer.mask_token_id
    prompt = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    canvas = torch.tensor([[tokenizer.bos_token_id, *prompt, *[mask_id] * args.new_tokens]])

    with torch.inference_mode():
        run_once(network, canvas, mask_id, args.steps, args.block_length)  # warm-up
        times = [run_once(network, canvas, mask_id, args.steps, args.block_length) for _ in range(args.runs)]
    median = statistics.median(times)
    print(f"tiny on CPU ({args.threads} threads, {args.dtype}): {args.new_tokens} new tokens, {args.steps} steps, "
          f"block {args.block_length}, canvas {canvas.shape[1]} tokens")
    print(f"runs: {', '.join(f'{t:.3f}s' for t in times)}")
    print(f"median {median:.3f}s  ->  {args.new_tokens / median:.1f} tokens/s  "
          f"({'under' if median < 2 else 'OVER'} the 2 s target)")


if __name__ == "__main__":
    main()
