"""Confidence-threshold parallel decoding (Fast-dLLM) against the plain LLaDA sampler, side by side.

For each prompt, the same model generates with the plain schedule (one token per
step, LLaDA's default) and with `threshold`; the benchmark prints the median wall
time of each, the speed-up, the forward passes used, and how many tokens the
threshold run shares with the plain one (its quality cost). A benchmark, not a test.

By default each contender runs 5 times per prompt, alternating (4 prompts: 40 generations of 64
tokens after one warm-up), so a median is never one noisy run: one run each took 2.5 minutes here
while a training job and tests kept both cores busy, so the default takes about 13 minutes on
such a machine and far less on a quiet one.

    python benchmarks/bench_parallel_decoding.py --threshold 0.9 --runs 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

PROMPTS = (
    "def read_config(path):\n",
    "class Stack:\n    def __init__(self):\n",
    "import os\n\n\ndef list_files(directory):\n",
    "def is_prime(n):\n",
)


def timed(model, prompt: str, options) -> tuple[float, list]:
    start = time.perf_counter()
    steps = list(model.generate(prompt, options))
    return time.perf_counter() - start, steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="tiny")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--runs", type=int, default=5, help="runs of each contender per prompt (the median is shown)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)

    from yipyap_jupyter.engine.model import SamplingOptions
    from yipyap_jupyter.engine.runtime import DiffusionModelManager

    manager = DiffusionModelManager()
    manager.load(args.model, device="cpu")
    model = manager.loaded_model
    plain = SamplingOptions(max_new_tokens=args.new_tokens, steps=args.new_tokens, block_length=args.block_length, seed=0)
    fast = SamplingOptions(max_new_tokens=args.new_tokens, steps=args.new_tokens, block_length=args.block_length,
                           seed=0, threshold=args.threshold)
    rows = []
    with torch.inference_mode():
        timed(model, PROMPTS[0], plain)  # warm-up
        for prompt in PROMPTS:
            plain_times, fast_times = [], []
            for _ in range(args.runs):  # alternate, so both see the same machine load
                t, plain_steps = timed(model, prompt, plain)
                plain_times.append(t)
                t, fast_steps = timed(model, prompt, fast)
                fast_times.append(t)
            same = sum(a == b for a, b in zip(plain_steps[-1].tokens, fast_steps[-1].tokens))
            rows.append((statistics.median(plain_times), statistics.median(fast_times),
                         len(plain_steps), len(fast_steps), same / args.new_tokens))
    print(f"{args.model} on CPU ({args.threads} threads): {args.new_tokens} new tokens, block {args.block_length}, "
          f"plain = one token per step vs threshold {args.threshold}")
    print(f"{'prompt':>6} {'plain s':>8} {'thresh s':>8} {'speed-up':>8} {'steps':>9} {'same tokens':>11}")
    for i, (tp, tf, sp, sf, same) in enumerate(rows):
        print(f"{i:>6} {tp:>8.3f} {tf:>8.3f} {tp / tf:>7.2f}x {sp:>4}->{sf:<4} {same:>10.0%}")
    total_plain, total_fast = sum(r[0] for r in rows), sum(r[1] for r in rows)
    print(f"overall speed-up {total_plain / total_fast:.2f}x, forward passes {sum(r[2] for r in rows)} -> "
          f"{sum(r[3] for r in rows)}, tokens shared with the plain output {statistics.mean(r[4] for r in rows):.0%}")


if __name__ == "__main__":
    main()
