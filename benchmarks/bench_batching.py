"""Concurrent requests decoded together: aggregate throughput, time to first step, texts equal to solo runs.

N = 1, 4, 8 concurrent generations (same settings, different prompts and seeds) on
(a) the shipped `tiny` model and (b) a random LLaDA-shaped checkpoint of 29M parameters
(12 layers, d_model 384, tiny's tokenizer and so its vocabulary of 6,000; not bench_engine.py's
random model, which has 8 layers and a vocabulary of 16,384), each through the service in this process (one thread
per request, as the server's executor runs them) and through HTTP+SSE on a real
Jupyter server (one streaming client per request). Contenders alternate: every round
runs each N once, and the figures are medians over rounds.

Reported per N: aggregate generated tokens/s and its ratio to N = 1, the time from
submission to the first step frame of the first and of the last request, and whether
every text equals the same request run alone. Targets: 8 concurrent on `tiny` >= 3x
the aggregate tokens/s of one, on the random model >= 1.5x, the last request's first
step within 2x the first's. A benchmark, not a test.

Then, per model, the ceiling that the network itself sets on this machine: one packed
forward pass of the 8 requests' canvases against 8 passes of one (alternating, median),
the rate at which the packed pass runs the linear layers' matrix products, and this
CPU's rate on a large matrix product. Where the packed pass already runs near that
rate, no scheduling can make 8 requests much cheaper than 8 passes' worth of arithmetic.

By default 5 rounds (`--rounds`), so a median is never one noisy run: a round runs 13 generations
of 64 tokens per model through the service and 13 over HTTP (N = 1, 4, 8), after each model's 8
solo runs; 5 rounds take 5/3 of the 3 rounds that the README's figures came from
(`--rounds 3`), several minutes on a quiet 2-core CPU and a good deal longer on a busy one.

    python benchmarks/bench_batching.py                 # both models, service and HTTP, 5 rounds
    python benchmarks/bench_batching.py --rounds 3 --no-http
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from jupyter_process import start_server, stop_server, stream_frames

PROMPTS = ["def add(a, b):", "import os\n", "class Stack:\n    def push(self, item):", "for i in range(10):",
           "# read a file\nwith open(path) as f:", "x = [", "def main():\n    args = parse()", "while True:"]
CONCURRENCY = (1, 4, 8)
TARGETS = {"tiny": 3.0, "random": 1.5}  # aggregate tokens/s of 8 concurrent over one
FIRST_STEP_TARGET = 2.0  # first step of the last request / of the first
#: Each model by its shape, as the figures name it.
SHAPES = {"tiny": "tiny", "random": "random LLaDA (12 layers, d_model 384, vocabulary 6,000)"}


def random_checkpoint(directory: Path) -> Path:
    """A random LLaDA network of the benchmark's shape with the shipped tiny model's tokenizer."""
    import torch

    from yipyap_jupyter.constants import TINY_MODEL_DIR
    from yipyap_jupyter.engine.checkpoint.weights import save_checkpoint
    from yipyap_jupyter.engine.families.llada.config import LLaDAConfig
    from yipyap_jupyter.engine.families.llada.network import LLaDAModel

    raw = json.loads((TINY_MODEL_DIR / "config.json").read_text())
    raw.update(d_model=384, n_heads=6, n_kv_heads=6, n_layers=12, mlp_hidden_size=1280, mlp_ratio=4)
    config = LLaDAConfig.from_dict(raw)
    torch.manual_seed(0)
    extra = {key: raw[key] for key in ("bos_token_id", "expand_token_id")}
    save_checkpoint(LLaDAModel(config), directory, extra_config=extra)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(TINY_MODEL_DIR / name, directory / name)
    return directory


def bodies(n: int, new_tokens: int, steps: int) -> list[dict]:
    """`n` requests of the same settings, each with its own seed (prompts repeat past the eighth)."""
    return [{"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": new_tokens, "steps": steps,
             "block_length": new_tokens, "seed": i} for i in range(n)]


def through_service(service, bodies: list[dict]) -> Run:
    """(wall seconds, each request's seconds to its first step, texts, tokens) of `bodies` run at once."""
    from yipyap_jupyter.service.events import CompleteEvent, StepEvent

    start = time.perf_counter()
    first: list[float] = [0.0] * len(bodies)
    results: list = [None] * len(bodies)

    def one(i: int) -> None:
        for event in service.generate_events(bodies[i]):
            if isinstance(event, StepEvent) and not first[i]:
                first[i] = time.perf_counter() - start
            if isinstance(event, CompleteEvent):
                results[i] = event

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
        time.sleep(0.002)  # arrival order = submission order
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if any(r is None for r in results):
        raise SystemExit("a request did not complete")
    return wall, first, [r.text for r in results], sum(b["max_new_tokens"] for b in bodies)


def through_http(url: str, token: str, bodies: list[dict]) -> Run:
    """The same over `POST /generate/stream`, one client connection per request."""
    start = time.perf_counter()
    first: list[float] = [0.0] * len(bodies)
    results: list[dict] = [{}] * len(bodies)

    def one(i: int) -> None:
        with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=600) as client:
            for frame in stream_frames(client, url, bodies[i]):
                if frame.get("type") == "step" and not first[i]:
                    first[i] = time.perf_counter() - start
                if frame.get("type") in ("complete", "error"):
                    results[i] = frame

    with ThreadPoolExecutor(len(bodies)) as pool:
        futures = []
        for i in range(len(bodies)):
            futures.append(pool.submit(one, i))
            time.sleep(0.002)
        for future in futures:
            future.result()
    wall = time.perf_counter() - start
    if any(r.get("type") != "complete" for r in results):
        raise SystemExit(f"a stream did not complete: {results}")
    return wall, first, [r["text"] for r in results], sum(b["max_new_tokens"] for b in bodies)


Run = tuple[float, list[float], list[str], int]  # wall seconds, each request's first step, texts, tokens


def summary(runs: dict[int, list[Run]], solo: list[str]) -> dict[int, dict]:
    """Per N (medians over rounds): aggregate tokens/s and its ratio to the first N, seconds to the first step
    of the first and of the last request, and whether every text equals its solo run."""
    rows: dict[int, dict] = {}
    for n, results in runs.items():
        rate = statistics.median(tokens / wall for wall, _, _, tokens in results)
        base = rows[next(iter(rows))]["tokens_per_s"] if rows else rate
        rows[n] = {
            "tokens_per_s": rate,
            "vs_first": rate / base,
            "first_step_s": statistics.median(f[0] for _, f, _, _ in results),
            "last_first_step_s": statistics.median(f[-1] for _, f, _, _ in results),
            "same_as_solo": all(texts == solo[:n] for _, _, texts, _ in results),
        }
    return rows


def report(label: str, runs: dict[int, list[Run]], solo: list[str], target: float) -> list[str]:
    print(f"\n{label}")
    print(f"{'N':>3} {'tok/s':>8} {'vs N=1':>7} {'1st step, first':>16} {'1st step, last':>15} {'texts = solo':>13}")
    verdicts = []
    for n, row in summary(runs, solo).items():
        rate, first, last = row["tokens_per_s"], row["first_step_s"], row["last_first_step_s"]
        print(f"{n:>3} {rate:>8.1f} {row['vs_first']:>6.2f}x {first * 1000:>13.0f} ms {last * 1000:>12.0f} ms "
              f"{'yes' if row['same_as_solo'] else 'NO':>13}")
        if n == max(runs):
            verdicts.append(f"{label}: {n} concurrent {row['vs_first']:.2f}x the tokens/s of one (target >= {target}x):"
                            f" {'met' if row['vs_first'] >= target else 'MISSED'}")
            verdicts.append(f"{label}: first step of request {n} {last / first:.2f}x that of request 1 (target <= "
                            f"{FIRST_STEP_TARGET}x): {'met' if last / first <= FIRST_STEP_TARGET else 'MISSED'}")
        if not row["same_as_solo"]:
            verdicts.append(f"{label}: N={n} texts differ from solo runs: MISSED")
    return verdicts


def forward_ceiling(model, bodies: list[dict], repeats: int = 15) -> str:
    """One packed pass of `bodies`' canvases vs as many passes of one, and the matrix-product rates (engine thread)."""
    import torch

    from yipyap_jupyter.engine.model import SamplingOptions
    from yipyap_jupyter.engine.packing import Packing, Segment

    network = model.fixed_length_network
    canvases = []
    for body in bodies:
        options = SamplingOptions(**{k: v for k, v in body.items() if k != "prompt"})
        canvases.append(next(model.prepare_generate(body["prompt"], options).program).ids)
    packing = Packing([Segment(c.shape[1]) for c in canvases])
    packed_ids = torch.cat(canvases, dim=1)
    solo_times, packed_times = [], []
    with torch.no_grad():
        for _ in range(repeats):
            started = time.perf_counter()
            for canvas in canvases:
                network(canvas)
            solo_times.append((time.perf_counter() - started) / len(canvases))
            started = time.perf_counter()
            network(packed_ids, packing=packing)
            packed_times.append(time.perf_counter() - started)
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        matmul_times = []
        for _ in range(repeats):
            started = time.perf_counter()
            a @ b
            matmul_times.append(time.perf_counter() - started)
    solo, packed = statistics.median(solo_times), statistics.median(packed_times)
    macs = sum(m.weight.numel() for m in model.network.modules() if isinstance(m, torch.nn.Linear))
    if getattr(model.network.config, "weight_tying", False):
        macs += model.network.model.transformer["wte"].weight.numel()
    packed_rate = 2 * macs * packed_ids.shape[1] / packed / 1e9
    peak = 2 * 1024**3 / statistics.median(matmul_times) / 1e9
    n = len(canvases)
    return (f"forward alone: a packed pass of {n} canvases {packed * 1000:.1f} ms, a pass of one {solo * 1000:.1f} ms: "
            f"at most {n * solo / packed:.2f}x the tokens/s of one from the network; the packed pass's linear layers "
            f"run at {packed_rate:.0f} GFLOP/s, a 1024x1024 matrix product at {peak:.0f} GFLOP/s")


def main() -> None:
    from yipyap_jupyter.constants import TINY_MODEL_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="rounds of N = 1, 4, 8 (the median is shown)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (both sides)")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--no-http", action="store_true", help="only through the service")
    p.add_argument("--only", choices=["tiny", "random"], help="one model only")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from yipyap_jupyter.engine.runtime import DiffusionModelManager
    from yipyap_jupyter.engine.runtime.engine_thread import on_engine_thread
    from yipyap_jupyter.service.service import DiffusionLLMService
    from yipyap_jupyter.settings import SettingsStore

    torch.set_num_threads(args.threads)
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        # built on the engine thread: torch work on a second thread would give OpenMP a second team (see engine_thread)
        random = on_engine_thread(random_checkpoint, Path(tmp) / "random")
        models = {"tiny": str(TINY_MODEL_DIR), "random": str(random)}
        for name, path in models.items():
            if args.only and name != args.only:
                continue
            manager = DiffusionModelManager()
            service = DiffusionLLMService(manager, SettingsStore(Path(tmp) / f"{name}.json"), default_model=None)
            info = manager.load(path, device="cpu")
            label = (f"{SHAPES[name]} ({info.parameters / 1e6:.1f}M parameters, {args.new_tokens} tokens, "
                     f"{args.steps} steps)")
            solo = [through_service(service, [body])[2][0] for body in bodies(max(CONCURRENCY), args.new_tokens,
                                                                              args.steps)]
            server = None
            if not args.no_http:
                workdir = Path(tmp) / f"server-{name}"
                workdir.mkdir()
                server, url, token = start_server(path, workdir, threads=args.threads)
            try:
                in_process: dict[int, list] = {n: [] for n in CONCURRENCY}
                over_http: dict[int, list] = {n: [] for n in CONCURRENCY}
                for _ in range(args.rounds):
                    for n in CONCURRENCY:
                        in_process[n].append(through_service(service, bodies(n, args.new_tokens, args.steps)))
                        if server is not None:
                            over_http[n].append(through_http(url, token, bodies(n, args.new_tokens, args.steps)))
                verdicts += report(f"{label}, service", in_process, solo, TARGETS[name])
                if server is not None:
                    verdicts += report(f"{label}, HTTP+SSE", over_http, solo, TARGETS[name])
                ceiling = on_engine_thread(forward_ceiling, manager.loaded_model,
                                           bodies(max(CONCURRENCY), args.new_tokens, args.steps))
                print(f"\n{label}: {ceiling}")
                verdicts.append(f"{label}: {ceiling}")
            finally:
                if server is not None:
                    stop_server(server)
            manager.unload()
    print()
    for verdict in verdicts:
        print(verdict)


if __name__ == "__main__":
    main()
