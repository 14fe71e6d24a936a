"""CPU speed of the embedded `tiny` model: 64 new tokens in 32 LLaDA steps (target: under 2 s).

A benchmark, not a test: it prints median wall time and tokens/s over several
runs after one warm-up run, for the shipped weights loaded in float32 (an absolute
time, against the target). Then two ratios, each measured side by side (alternating
pairs, median) on the same canvas:

- a pass that computes the vocabulary head only at the current block's 32 positions
  (what the samplers ask for) against a pass that computes it at every position;
- passes taken in turn by 1 and by 8 other threads (as request threads would take them)
  against the same pass on this thread, with `--threads` torch threads: each thread that
  computes gets an OpenMP team of its own, which is why every pass of the engine runs on
  one engine thread.

    python benchmarks/bench_tiny_cpu.py --runs 7 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from yipyap_jupyter.constants import TINY_MODEL_DIR
from yipyap_jupyter.engine.checkpoint.weights import load_network
from yipyap_jupyter.engine.families.llada.sampler import llada_program
from yipyap_jupyter.engine.runtime.batch import run_alone
from yipyap_jupyter.engine.tokenizer import load_tokenizer

PROMPT = 'def parse_args(argv=None):\n    """Parse the command line."""\n'


def run_once(network, canvas: torch.Tensor, mask_id: int, steps: int, block_length: int) -> float:
    start = time.perf_counter()
    program = llada_program(canvas, mask_id=mask_id, steps=steps, block_length=block_length)
    for _ in run_alone(network, program):
        pass
    return time.perf_counter() - start


def timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def head_at_the_block(network, canvas: torch.Tensor, start: int, pairs: int) -> float:
    """Median of (pass with the vocabulary head at 32 positions) / (pass with it everywhere), alternating."""
    ratios = []
    for _ in range(pairs):
        everywhere = timed(lambda: network(canvas))
        block = timed(lambda: network(canvas, logits_at=(start, start + 32)))
        ratios.append(block / everywhere)
    return statistics.median(ratios)


def taking_turns(network, canvas: torch.Tensor, threads: int, pairs: int) -> float:
    """Median of (a pass on the next of `threads` other threads, in turn) / (the same pass on this one), alternating."""
    def one_pass() -> float:
        with torch.inference_mode():
            return timed(lambda: network(canvas))

    others = [ThreadPoolExecutor(1) for _ in range(threads)]
    try:
        for other in others:
            other.submit(one_pass).result()  # each one's OpenMP team exists before the first timed pass
        ratios = []
        for number in range(pairs):
            here = one_pass()
            ratios.append(others[number % threads].submit(one_pass).result() / here)
    finally:
        for other in others:
            other.shutdown()
    return statistics.median(ratios)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path(TINY_MODEL_DIR))
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--pairs", type=int, default=31, help="alternating pairs for each of the two ratios")
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
    start = canvas.shape[1] - args.new_tokens
    with torch.inference_mode():
        head = head_at_the_block(network, canvas, start, args.pairs)
    print(f"vocabulary head at the block's 32 positions / at all {canvas.shape[1]}: {head:.3f} "
          f"({1 - head:.1%} off a pass; median of {args.pairs} pairs)")
    for threads in (1, 8):
        ratio = taking_turns(network, canvas, threads, args.pairs)
        print(f"a pass taken in turn by {threads} other thread(s) / on this thread ({args.threads} torch threads): "
              f"{ratio:.2f}x (median of {args.pairs} pairs)")


if __name__ == "__main__":
    main()
