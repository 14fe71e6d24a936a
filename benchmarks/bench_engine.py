"""The engine's fast-sampling options side by side: plain vs the block-wise caches vs threshold decoding.

Greedy generation on one CPU thread, on (a) the shipped `tiny` model and (b) a random
LLaDA-shaped checkpoint in the official format (~29M parameters: d_model 384, 8 layers,
6 heads, MLP 1280, vocabulary 16384) that the script writes itself, with a 32-token
prompt. Contenders run in alternation, so they share the machine's load; each figure is
the median of `--runs`. For each contender: tokens/s, forward passes, speed-up over
plain, the share of generated tokens equal to plain's output (the approximation's
cost), and the share of time spent outside the network forward (the sampler's own
overhead), timed by hooks around the network. `--dream` adds a random Dream-shaped
checkpoint (block sampler). A benchmark, not a test.

By default each contender runs 5 times (`--runs`), so a median is never one noisy run: one run of
each took 3.4 minutes in all here (about 100 s of it building the random checkpoint, loading and
warming up) while a training job and tests kept both cores busy, so the default takes about 10
minutes on such a machine; `--long` takes several times as long.

    python benchmarks/bench_engine.py            # 256 tokens, 256 steps, blocks of 32, 5 runs
    python benchmarks/bench_engine.py --long     # 1024 tokens, 1024 steps, blocks of 32
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

CONTENDERS: dict[str, dict] = {
    "plain": dict(cache="none"),
    "prefix": dict(cache="prefix"),
    "dual": dict(cache="dual"),
    "dual+t0.9": dict(cache="dual", threshold=0.9),
    "dual+t0.5": dict(cache="dual", threshold=0.5),
}
#: The random LLaDA checkpoint by its shape (bench_batching.py's random model has another).
RANDOM_SHAPE = "random LLaDA (8 layers, d_model 384, vocabulary 16,384)"
TARGETS = {"dual": 2.5, "prefix": 1.5}  # speed-up over plain on the random LLaDA at 256 tokens
MAX_OUTSIDE = 0.05
TINY_PROMPT = "import os\n\n\ndef list_files(directory):\n    "


class ForwardTimer:
    """Hooks around a network: seconds spent inside its forward, and calls, since `reset`.

    On a GPU each hook waits for the device first, so the seconds are the pass's own and not
    the time it took to queue its kernels.
    """

    def __init__(self, network: nn.Module) -> None:
        self.seconds, self.calls, self._started = 0.0, 0, 0.0
        self._on_gpu = next(network.parameters()).device.type == "cuda"
        network.register_forward_pre_hook(self._start)
        network.register_forward_hook(self._stop)

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def _start(self, module: nn.Module, args: tuple) -> None:
        if self._on_gpu:
            torch.cuda.synchronize()
        self._started = time.perf_counter()

    def _stop(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if self._on_gpu:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - self._started
        self.calls += 1


def ban(network: nn.Module, tokens: list[int]) -> None:
    """Never predict `tokens` (the mask; for tiny also what `DiffusionModel` bans), inside the timed forward."""

    def lower(module: nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        logits[..., tokens] = -torch.inf
        return logits

    network.register_forward_hook(lower)


@dataclass
class Runs:
    seconds: list[float] = field(default_factory=list)
    outside: list[float] = field(default_factory=list)
    passes: int = 0
    tokens: list[int] = field(default_factory=list)


def compare(name: str, sample: Callable[[dict], Iterator], timer: ForwardTimer, span: tuple[int, int],
            runs: int, contenders: dict[str, dict]) -> dict[str, Runs]:
    results = {label: Runs() for label in contenders}
    for options in contenders.values():  # warm-up
        list(sample(options))
    for _ in range(runs):
        for label, options in contenders.items():
            timer.reset()
            start = time.perf_counter()
            steps = list(sample(options))
            elapsed = time.perf_counter() - start
            r = results[label]
            r.seconds.append(elapsed)
            r.outside.append(1 - timer.seconds / elapsed)
            r.passes, r.tokens = timer.calls, steps[-1].canvas[span[0] : span[1]].tolist()
    print(f"\n{name}")
    print(f"{'contender':>10} {'tok/s':>8} {'passes':>7} {'speed-up':>9} {'same as plain':>14} {'outside fwd':>12}")
    for label, row in summary(results, span[1] - span[0]).items():
        print(f"{label:>10} {row['tokens_per_s']:>8.1f} {row['passes']:>7} {row['speed_up']:>8.2f}x "
              f"{row['same_as_plain']:>13.0%} {row['outside_forward']:>11.1%}")
    return results


def summary(results: dict[str, Runs], generated: int) -> dict[str, dict]:
    """Per contender: tokens/s, passes, time per pass, speed-up over the first (plain), share of tokens equal
    to its output, and share of time outside the forward (medians over runs)."""
    plain = next(iter(results.values()))
    rows = {}
    for label, r in results.items():
        seconds = statistics.median(r.seconds)
        rows[label] = {
            "tokens_per_s": generated / seconds,
            "passes": r.passes,
            "ms_per_pass": seconds * 1000 / max(r.passes, 1),
            "speed_up": statistics.median(plain.seconds) / seconds,
            "same_as_plain": sum(a == b for a, b in zip(r.tokens, plain.tokens)) / generated,
            "outside_forward": statistics.median(r.outside),
        }
    return rows


def speed_up(results: dict[str, Runs], label: str) -> float:
    return statistics.median(results["plain"].seconds) / statistics.median(results[label].seconds)


def sampler(family: str, network: nn.Module, canvas: torch.Tensor, mask: int, steps: int,
            block: int) -> Callable[[dict], Iterator]:
    """The engine's greedy sampler of `family` ("llada" or "dream", block-wise with alg entropy) over `canvas`,
    as a function of a contender's options."""
    from yipyap_jupyter.engine.families.dream.sampler import dream_program
    from yipyap_jupyter.engine.families.llada.sampler import llada_program
    from yipyap_jupyter.engine.runtime.batch import run_alone
    from yipyap_jupyter.engine.samplers.common import network_device

    on_device = canvas.to(network_device(network, canvas.device))
    if family == "llada":
        return lambda options: run_alone(network, llada_program(on_device, mask_id=mask, steps=steps, block_length=block,
                                                                **options))
    return lambda options: run_alone(network, dream_program(on_device, mask_id=mask, steps=steps, block_length=block,
                                                            alg="entropy", **options))


def timed_random_prompt(network: nn.Module, gen: int, prompt_tokens: int = 32) -> tuple[ForwardTimer, torch.Tensor, int]:
    """For a random network: a timer around it (its mask banned inside the timed forward), and a canvas of a random
    `prompt_tokens`-token prompt and `gen` masks on the network's device; (timer, canvas, mask id)."""
    mask = network.config.mask_token_id
    ban(network, [mask])
    prompt = torch.randint(0, network.config.vocab_size - 1, (prompt_tokens,), generator=torch.Generator().manual_seed(0))
    prompt += (prompt >= mask).long()  # any id but the mask's
    canvas = torch.tensor([prompt.tolist() + [mask] * gen], device=next(network.parameters()).device)
    return ForwardTimer(network), canvas, mask


def random_checkpoint(directory: Path, family: str) -> Path:
    """A random ~29M-parameter checkpoint in the official layout of `family`."""
    from yipyap_jupyter.engine.checkpoint.weights import save_checkpoint
    from yipyap_jupyter.engine.families.dream.config import DreamConfig
    from yipyap_jupyter.engine.families.dream.network import DreamModel
    from yipyap_jupyter.engine.families.llada.config import LLaDAConfig
    from yipyap_jupyter.engine.families.llada.network import LLaDAModel

    torch.manual_seed(0)
    if family == "llada":
        config = LLaDAConfig(d_model=384, n_layers=8, n_heads=6, mlp_hidden_size=1280, vocab_size=16384,
                             mask_token_id=16383, eos_token_id=16382, pad_token_id=16382, rope_theta=500000.0)
        network: nn.Module = LLaDAModel(config)
    else:
        config = DreamConfig(hidden_size=384, num_hidden_layers=8, num_attention_heads=6, num_key_value_heads=2,
                             intermediate_size=1280, vocab_size=16384, mask_token_id=16383, pad_token_id=16382,
                             bos_token_id=16381, eos_token_id=16382)
        network = DreamModel(config)
    return save_checkpoint(network, directory)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--long", action="store_true", help="1024 tokens / 1024 steps instead of 256 / 256")
    p.add_argument("--runs", type=int, default=5, help="runs of each contender (the median is shown)")
    p.add_argument("--block-length", type=int, default=32)
    p.add_argument("--dream", action="store_true", help="add a random Dream-shaped checkpoint (block sampler)")
    p.add_argument("--skip-tiny", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)

    from yipyap_jupyter.engine.checkpoint.weights import load_network
    from yipyap_jupyter.engine.runtime import DiffusionModelManager

    gen = 1024 if args.long else 256
    block = args.block_length
    print(f"greedy, {gen} new tokens, {gen} steps, blocks of {block}, 1 CPU thread, median of {args.runs} runs, "
          f"torch {torch.__version__}")

    verdicts: list[str] = []
    with torch.inference_mode():
        if not args.skip_tiny:
            manager = DiffusionModelManager()
            manager.load("tiny", device="cpu")
            model = manager.loaded_model
            ids = model.ids
            ban(model.network, [i for i in (ids.expand, ids.bos) if i is not None])
            timer = ForwardTimer(model.network)
            prompt = model.tokenizer(TINY_PROMPT)["input_ids"]
            canvas = torch.tensor([prompt + [ids.mask] * gen])
            results = compare(f"tiny ({model.parameters / 1e6:.1f}M parameters, {len(prompt)}-token prompt)",
                              sampler("llada", model.network, canvas, ids.mask, gen, block), timer,
                              (len(prompt), canvas.shape[1]), args.runs, CONTENDERS)
            outside = statistics.median(results["plain"].outside)
            verdicts.append(f"tiny: plain spends {outside:.1%} outside the forward (target <= {MAX_OUTSIDE:.0%}): "
                            f"{'met' if outside <= MAX_OUTSIDE else 'NOT met'}")

        with tempfile.TemporaryDirectory() as tmp:
            network = load_network(random_checkpoint(Path(tmp) / "llada", "llada"))
            timer, canvas, mask = timed_random_prompt(network, gen)
            params = sum(p.numel() for p in network.parameters()) / 1e6
            results = compare(f"{RANDOM_SHAPE} ({params:.1f}M parameters, 32-token prompt)",
                              sampler("llada", network, canvas, mask, gen, block), timer, (32, canvas.shape[1]), args.runs,
                              CONTENDERS)
            outside = statistics.median(results["plain"].outside)
            verdicts.append(f"{RANDOM_SHAPE}: plain spends {outside:.1%} outside the forward (target <= "
                            f"{MAX_OUTSIDE:.0%}): {'met' if outside <= MAX_OUTSIDE else 'NOT met'}")
            if not args.long:
                for label, target in TARGETS.items():
                    achieved = speed_up(results, label)
                    verdicts.append(f"{RANDOM_SHAPE}: {label} {achieved:.2f}x plain (target >= {target}x): "
                                    f"{'met' if achieved >= target else 'NOT met'}")

            if args.dream:
                network = load_network(random_checkpoint(Path(tmp) / "dream", "dream"))
                timer, canvas, mask = timed_random_prompt(network, gen)
                params = sum(p.numel() for p in network.parameters()) / 1e6
                dream_contenders = {label: options for label, options in CONTENDERS.items() if label != "dual+t0.5"}
                compare(f"random Dream, block sampler ({params:.1f}M parameters, 32-token prompt, alg entropy)",
                        sampler("dream", network, canvas, mask, gen, block), timer, (32, canvas.shape[1]), args.runs,
                        dream_contenders)

    print()
    for verdict in verdicts:
        print(verdict)


if __name__ == "__main__":
    main()
