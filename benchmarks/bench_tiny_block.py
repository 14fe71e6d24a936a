"""`tiny-block` against `tiny` on the same 20 prompts, and what swapping the resident model between them costs.

Speed: each model has its own service (both resident), each at its own defaults; every round
generates the 20 prompts of `scripts/eval_continuations.py` with one model then the other, the
order alternating between rounds. Reports the median tokens/s of each and their ratio.

Switch: one service, as a user has it: a generation with nothing named runs on `tiny-block`,
an infill then swaps in `tiny` and the next `tiny-block` generation swaps it back. Reports the
median time of a swap (the load of the other model, the check pass included) against the median
time of one default generation.

    python benchmarks/bench_tiny_block.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from eval_continuations import PROMPTS  # noqa: E402

MODELS = ("tiny", "tiny-block")


def tokens_per_second(service, model: str) -> float:
    tokens, start = 0, time.perf_counter()
    for prompt in PROMPTS:
        tokens += service.generate({"prompt": prompt, "model": model, "seed": 0}).tokens
    return tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per contender (default 5; about a minute)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from yipyap_jupyter.service.service import DiffusionLLMService

    torch.set_num_threads(args.threads)
    services = {model: DiffusionLLMService(default_model=None) for model in MODELS}
    for model, service in services.items():
        service.load_model(model, {"device": "cpu"})
        tokens_per_second(service, model)  # warm-up
    speed: dict[str, list[float]] = {model: [] for model in MODELS}
    for round_ in range(args.rounds):
        for model in MODELS if round_ % 2 == 0 else reversed(MODELS):
            speed[model].append(tokens_per_second(services[model], model))
    medians = {model: statistics.median(values) for model, values in speed.items()}
    print(f"tokens/s, median of {args.rounds} rounds of {len(PROMPTS)} prompts at each model's defaults:")
    for model in MODELS:
        print(f"  {model:<11} {medians[model]:7.0f}")
    print(f"  tiny-block / tiny: {medians['tiny-block'] / medians['tiny']:.2f}x")

    del services
    user = DiffusionLLMService()  # the shipped defaults: tiny-block generates, tiny infills
    user.generate({"prompt": PROMPTS[0], "seed": 0})
    swaps, generations = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        user.infill({"prefix": "def add(a, b):\n", "suffix": "\n    return total\n", "seed": 0})
        infill_with_swap = time.perf_counter() - start
        start = time.perf_counter()
        user.infill({"prefix": "def add(a, b):\n", "suffix": "\n    return total\n", "seed": 0})
        infill_resident = time.perf_counter() - start
        start = time.perf_counter()
        user.load_model("tiny-block", {"device": "cpu"})
        swaps.append(infill_with_swap - infill_resident)
        swaps.append(time.perf_counter() - start)
        start = time.perf_counter()
        user.generate({"prompt": PROMPTS[0], "seed": 0})
        generations.append(time.perf_counter() - start)
    swap, generation = statistics.median(swaps), statistics.median(generations)
    print(f"swap of the resident model (tiny-block <-> tiny), median of {len(swaps)}: {swap * 1000:.0f} ms, "
          f"{swap / generation:.1f}x one default generation ({generation * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
