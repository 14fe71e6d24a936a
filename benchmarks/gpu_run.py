"""One prepared run of what only a GPU can show, in at most eight minutes of wall time.

Parts, in this order, each with a time budget of its own (never past the run's end), so a
slow part cannot starve the others; a part that runs out of budget skips what is left of it
and says so:

1. `out_of_memory`: a real Jupyter server on 127.0.0.1 serves a random checkpoint on the GPU;
   the benchmark then fills the GPU's free memory (a ballast allocation of its own, so the model
   can stay small and its CPU fallback quick) and asks for a generation that cannot fit: the
   fallback to CPU must show in the stream and the model info, the generation must complete,
   and the next requests are served. Then the fit check: with the GPU full, `device="auto"`
   must place a ~1B model on the CPU before loading anything, and an explicit `cuda` load must
   run out of memory and fall back.
2. `batching`: 1, 4, 8, 16 concurrent requests through the service on `tiny` and on a random
   ~1B LLaDA-shaped checkpoint (bf16): aggregate tokens/s, time to first step, time per forward
   pass, texts equal to their solo runs.
3. `caches`: plain, prefix, dual, dual + threshold 0.9 on random ~1B LLaDA and Dream shapes in
   bf16 at 256 and 1024 tokens (greedy, steps = tokens, blocks of 32): tokens/s, forward passes,
   time per pass, speed-up, tokens equal to plain.
4. `diffusion_gemma`, `block_families`, `ray_serve` (see `gpu_families.py`): measured where the
   engine (or Ray) has them, otherwise skipped with a line that says why.

Parts that run the model in this process record its peak GPU memory (the out-of-memory part
records the GPU's free memory instead); the run records the GPU, driver, torch and CUDA versions.
Random checkpoints are built on the machine (weights drawn on the GPU); nothing is downloaded.
Results go to `--out DIR` as `gpu_run.json` and `gpu_run.md` (rewritten after every part, so a
run cut short keeps what it measured), and the table is printed.

    python benchmarks/gpu_run.py --out DIR              # on a CUDA machine: 7.5 minutes at most
    python benchmarks/gpu_run.py --dry-run --out DIR    # every part on the CPU at toy sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpu_parts import Budget, Context, Part, Skipped, gpu_memory_mib, millions, release_memory, serve

#: The sizes and budgets of a real run and of the dry run.
SIZES: dict[str, dict[str, Any]] = {
    "gpu": {
        "total_s": 450,  # the watchdog stops the run 30 s later, inside the eight minutes
        "budgets_s": {"out_of_memory": 110, "batching": 80, "caches": 150, "diffusion_gemma": 35,
                      "block_families": 45, "ray_serve": 30},
        # ~1.03B parameters each, the official families' vocabularies
        "llada": dict(d_model=2048, n_layers=10, n_heads=16, mlp_hidden_size=5632, vocab_size=126464,
                      max_sequence_length=4096),
        "dream": dict(hidden_size=1536, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=2,
                      intermediate_size=8960, vocab_size=152064, max_position_embeddings=4096),
        # the server's model in the out-of-memory part: ~18M parameters, so that the four passes it makes on the
        # CPU after the fallback take seconds even where the CPU's bf16 is slow
        "oom_model": dict(d_model=256, n_layers=2, n_heads=4, mlp_hidden_size=704, vocab_size=32768,
                          max_sequence_length=4096),
        "oom_tokens": 2048,  # the vocabulary head's output alone is 128 MiB in bf16; the ballast leaves 64 MiB free
        "concurrency": (1, 4, 8, 16), "batch_tokens": 64, "batch_steps": 32, "batch_rounds": 3,
        "cache_lengths": (256, 1024), "cache_runs": 1,
    },
    "dry": {
        "total_s": 100,
        "budgets_s": {"out_of_memory": 60, "batching": 25, "caches": 20, "diffusion_gemma": 15,
                      "block_families": 10, "ray_serve": 5},
        "llada": dict(d_model=64, n_layers=2, n_heads=4, mlp_hidden_size=128, vocab_size=256,
                      max_sequence_length=512),
        "dream": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=256, max_position_embeddings=512),
        "oom_model": dict(d_model=32, n_layers=2, n_heads=4, mlp_hidden_size=64, vocab_size=256,
                          max_sequence_length=512),
        "oom_tokens": 64,
        "concurrency": (1, 4, 8, 16), "batch_tokens": 8, "batch_steps": 4, "batch_rounds": 1,
        "cache_lengths": (32, 64), "cache_runs": 1,
    },
}
WATCHDOG_GRACE_S = 30
BLOCK_LENGTH = 32
STEP_OVERHEAD_S = 0.002  # a sampler step's own time on a GPU, for budget estimates
CACHE_CONTENDERS = ("plain", "prefix", "dual", "dual+t0.9")
COLUMNS = {"part": "part", "setting": "setting", "tokens_per_s": "tok/s", "ms_per_pass": "ms/pass",
           "ratio": "vs first", "same": "same text", "first_step_ms": "last request's 1st step ms", "peak_mib": "peak MiB",
           "note": "note"}


# -- part 2: batching -------------------------------------------------------------------------------------------


def batching(ctx: Context, budget: Budget, part: Part) -> None:
    """N concurrent requests through the service on `tiny` and the ~1B LLaDA shape; texts against solo runs."""
    from bench_batching import bodies, summary, through_service
    from bench_engine import ForwardTimer

    from yipyap_jupyter.constants import TINY_MODEL_DIR

    s = ctx.sizes
    levels = s["concurrency"]
    requests = lambda n: bodies(n, s["batch_tokens"], s["batch_steps"])
    for label, path in (("tiny", TINY_MODEL_DIR), ("llada ~1B" if not ctx.dry_run else "llada toy", None)):
        release_memory()
        manager, service, info = serve(ctx, path or ctx.checkpoint("llada"), max_batch_size=max(levels))
        assert manager.loaded_model is not None
        timer = ForwardTimer(manager.loaded_model.network)
        setting = f"{label} ({millions(info.parameters)}, {info.dtype}), {s['batch_tokens']} tokens, " \
                  f"{s['batch_steps']} steps"
        runs: dict[int, list] = {n: [] for n in levels}
        per_pass: dict[int, list[float]] = {n: [] for n in levels}
        try:
            started = time.perf_counter()
            solo = [through_service(service, [body])[2][0] for body in requests(max(levels))]
            solo_s = time.perf_counter() - started
            for round_number in range(s["batch_rounds"]):
                # a round runs each N once; a batch of N takes a few solo runs' time
                budget.check(solo_s / max(levels) * len(levels) * 2, f"{setting}: round {round_number + 1}")
                for n in levels:
                    timer.reset()
                    runs[n].append(through_service(service, requests(n)))
                    per_pass[n].append(timer.seconds * 1000 / max(timer.calls, 1))
        except Skipped as skipped:
            part.skip(skipped)
        finally:
            peak = gpu_memory_mib()
            manager.unload()
        runs = {n: r for n, r in runs.items() if r}
        for n, row in summary(runs, solo).items():
            part.row(f"{setting}, N={n}", tokens_per_s=row["tokens_per_s"], ratio=row["vs_first"],
                     same=row["same_as_solo"], first_step_ms=row["last_first_step_s"] * 1000,
                     ms_per_pass=sorted(per_pass[n])[len(per_pass[n]) // 2], peak_mib=peak,
                     note=f"first request's first step {row['first_step_s'] * 1000:.0f} ms")
        part.details[label] = {"rounds": len(runs.get(levels[0], [])), "solo_seconds": round(solo_s, 2)}


# -- part 3: caches and thresholds ------------------------------------------------------------------------------


def caches(ctx: Context, budget: Budget, part: Part) -> None:
    """Plain vs prefix vs dual vs dual + threshold on the ~1B LLaDA and Dream shapes, shortest length first."""
    import torch
    from bench_engine import CONTENDERS, compare, sampler, summary, timed_random_prompt

    from yipyap_jupyter.engine.checkpoint.weights import load_network

    lengths = ctx.sizes["cache_lengths"]
    runs = ctx.sizes["cache_runs"]
    contenders = {label: CONTENDERS[label] for label in CACHE_CONTENDERS}
    networks = {}
    for family in ("llada", "dream"):
        network = load_network(ctx.checkpoint(family), device=ctx.device, dtype=ctx.dtype)
        networks[family] = (network, *timed_random_prompt(network, max(lengths)))
    with torch.inference_mode():
        for gen in lengths:
            for family, (network, timer, canvas, mask) in networks.items():
                params = millions(sum(p.numel() for p in network.parameters()))
                setting = f"{family} {params} {str(ctx.dtype).removeprefix('torch.')}, {gen} tokens"
                window = canvas[:, : 32 + gen]
                try:
                    # a plain run is `gen` passes over the whole canvas and a sampler step after each; the four
                    # contenders, warm-up included, cost about (runs + 1) x 2.2 plain runs
                    plain = gen * (one_pass_seconds(network, window) + STEP_OVERHEAD_S)
                    budget.check(plain * (runs + 1) * 2.2, setting)
                except Skipped as skipped:
                    part.skip(skipped)
                    continue
                release_memory()
                results = compare(setting, sampler(family, network, window, mask, gen, BLOCK_LENGTH), timer,
                                  (32, window.shape[1]), runs, contenders)
                peak = gpu_memory_mib()
                for label, row in summary(results, gen).items():
                    part.row(f"{setting}: {label}", tokens_per_s=row["tokens_per_s"], ms_per_pass=row["ms_per_pass"],
                             ratio=row["speed_up"], same=f"{row['same_as_plain']:.0%}", peak_mib=peak,
                             note=f"{row['passes']} passes, {row['outside_forward']:.1%} outside the forward")
    del networks


def one_pass_seconds(network: Any, canvas: Any) -> float:
    """Seconds of one forward pass over `canvas` (after one to warm up)."""
    import torch

    times = []
    for _ in range(2):
        started = time.perf_counter()
        network(canvas)
        if canvas.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return times[-1]


# -- the run ----------------------------------------------------------------------------------------------------


def environment(ctx: Context) -> dict[str, Any]:
    import torch
    import transformers

    env: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dry_run": ctx.dry_run, "device": ctx.device, "python": platform.python_version(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
        "cpu_count": os.cpu_count(), "torch_threads": ctx.threads,
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   gpu_count=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version(),
                   bf16=torch.cuda.is_bf16_supported(), driver=nvidia_driver())
    else:
        env["gpu"] = None
    return env


def nvidia_driver() -> str | None:
    """The NVIDIA driver's version, from `nvidia-smi` where it is installed."""
    if shutil.which("nvidia-smi") is None:
        return None
    answer = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                            capture_output=True, text=True, timeout=30)
    return answer.stdout.strip().splitlines()[0] if answer.returncode == 0 and answer.stdout.strip() else None


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    where = "dry run on the CPU at toy sizes (not figures to quote)" if env["dry_run"] else env["gpu"]
    lines = [f"# GPU run, {env['date']}", "",
             f"{where}; torch {env['torch']}, CUDA {env['cuda']} (driver {env.get('driver')}), "
             f"transformers {env['transformers']}, "
             f"{env['cpu_count']} CPUs; {report['seconds']:.0f} s in all.", "",
             "| " + " | ".join(COLUMNS.values()) + " |", "|" + " --- |" * len(COLUMNS)]
    for part in report["parts"].values():
        for row in part["rows"]:
            lines.append("| " + " | ".join(format_cell(key, row.get(key)) for key in COLUMNS) + " |")
    lines.append("")
    for name, part in report["parts"].items():
        status = f"{part['status']} in {part['seconds']:.0f} s of {part['budget_s']:.0f}"
        lines.append(f"- **{name}** ({status})" + (": " + "; ".join(part["notes"]) if part["notes"] else ""))
    return "\n".join(lines) + "\n"


def format_cell(key: str, value: Any) -> str:
    """A table cell: ratios as `1.23x`, rates and times to one decimal, booleans as yes / **no**."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if key == "ratio":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value).replace("|", "/")


def parts() -> dict[str, Callable[[Context, Budget, Part], None]]:
    from gpu_families import block_families, diffusion_gemma, ray_serve
    from gpu_oom import out_of_memory

    return {"out_of_memory": out_of_memory, "batching": batching, "caches": caches,
            "diffusion_gemma": diffusion_gemma, "block_families": block_families, "ray_serve": ray_serve}


def run_part(name: str, work: Callable[[Context, Budget, Part], None], ctx: Context, run_ends: float) -> dict:
    budget = Budget(ctx.sizes["budgets_s"][name], run_ends)
    part = Part(name)
    print(f"\n== {name} (budget {budget.seconds} s)", flush=True)
    started = time.perf_counter()
    status = "ok"
    try:
        if budget.left() < 1:
            raise Skipped("the run's time is spent")
        release_memory()
        work(ctx, budget, part)
        if part.cut_short:
            status = "partial"
    except Skipped as skipped:
        status = "skipped"
        part.note(str(skipped))
    except (Exception, SystemExit) as error:  # noqa: BLE001 - a failed part is reported, the next one runs
        status = "error"
        part.details["traceback"] = traceback.format_exc()
        part.note(f"failed: {type(error).__name__}: {error}")
    return {"status": status, "seconds": round(time.perf_counter() - started, 1), "budget_s": budget.seconds,
            "rows": part.rows, "notes": part.notes, "details": part.details}


def write(report: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_run.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    table = markdown(report)
    (out / "gpu_run.md").write_text(table, encoding="utf-8")
    return table


def start_watchdog(ctx: Context, report: dict[str, Any], out: Path, seconds: float) -> threading.Timer:
    """After `seconds`, write what was measured, stop the child processes and exit: the run never overstays."""

    def stop() -> None:
        report["stopped_by_watchdog"] = True
        report["seconds"] = round(seconds, 1)
        write(report, out)
        for child in ctx.children:
            child.kill()
        print(f"\nthe run passed {seconds:.0f} s: stopped, results so far in {out}", flush=True)
        os._exit(3)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    return timer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for gpu_run.json and gpu_run.md")
    p.add_argument("--dry-run", action="store_true", help="every part on the CPU at toy sizes")
    p.add_argument("--only", nargs="*", choices=list(SIZES["gpu"]["budgets_s"]), help="run only these parts")
    args = p.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --dry-run to check the script on the CPU")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="yipyap-gpu-run-") as scratch:
        ctx = Context(args.dry_run, SIZES["dry" if args.dry_run else "gpu"], Path(scratch))
        torch.set_num_threads(ctx.threads)
        report: dict[str, Any] = {"environment": environment(ctx), "parts": {}, "checkpoints_built_s": ctx.built,
                                  "seconds": 0.0}
        total = ctx.sizes["total_s"]
        watchdog = start_watchdog(ctx, report, args.out, total + WATCHDOG_GRACE_S)
        for name, work in parts().items():
            if args.only and name not in args.only:
                continue
            report["parts"][name] = run_part(name, work, ctx, started + total)
            report["seconds"] = round(time.monotonic() - started, 1)
            write(report, args.out)
        watchdog.cancel()
    print("\n" + write(report, args.out), flush=True)


if __name__ == "__main__":
    main()
