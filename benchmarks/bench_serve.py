"""The service on Ray Serve: 16 concurrent streams over 1 and 2 replicas, and one stream's overhead.

Starts one local Ray instance in this process with two Serve applications of `tiny`
side by side (`/one`: one replica, `/two`: two replicas; one torch thread per replica),
and a Jupyter server with the extension (embedded mode, one torch thread) in a subprocess.

1. Concurrency: 16 streaming generations at once (different prompts and seeds) through each
   application; rounds alternate the two. Per application, medians over rounds: aggregate
   generated tokens/s, the time from submission to each stream's first step frame (median
   and slowest stream), and the 95th percentile of whole-request time; the ratio of the
   two applications' aggregate tokens/s.
2. Overhead: one stream at a time through Serve (`/one`) against the same stream through the
   Jupyter extension's own HTTP+SSE route, alternating; the median of paired ratios and the
   ratio of medians (target <= 1.10).

A benchmark, not a test: run it on a quiet machine. By default 5 rounds of 16 streams per
application (`--rounds`; the README's figures came from 3) and 21 single-stream pairs, so no median
is one noisy run: 160 generations of 64 tokens in the rounds (and a warm-up round) and 42 in the
pairs, after Ray, both applications and the Jupyter server have started; at the README's rates
(186-215 tokens/s over 16 streams, about 0.27 s a single stream) that is about 2-3 minutes in all.

    python benchmarks/bench_serve.py                 # 5 rounds of 16, 21 single-stream pairs
    python benchmarks/bench_serve.py --rounds 3 --pairs 31
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from jupyter_process import free_port, start_server

PROMPTS = ["def add(a, b):", "import os\n", "class Stack:\n    def push(self, item):", "for i in range(10):",
           "# read a file\nwith open(path) as f:", "x = [", "def main():\n    args = parse()", "while True:"]
STREAMS = 16
OVERHEAD_TARGET = 1.10


@dataclass
class StreamTiming:
    first_step: float  # seconds from submission to the first step frame
    total: float
    tokens: int
    replica: str
    generation: float  # the replica's own generation_time: what the model took, without the transport


def stream(client: httpx.Client, url: str, body: dict, started: float) -> StreamTiming:
    """One generation read to its last frame, timed from `started` (a shared start for concurrent ones)."""
    first_step, last = 0.0, {}
    with client.stream("POST", f"{url}/generate/stream", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: "):
                last = json.loads(line[6:])
                if last["type"] == "step" and not first_step:
                    first_step = time.perf_counter() - started
    if last.get("type") != "complete":
        raise SystemExit(f"stream ended with {last}")
    return StreamTiming(first_step, time.perf_counter() - started, last["tokens"], response.headers.get("X-Replica", ""),
                        last["generation_time"])


def concurrent_round(clients: list[httpx.Client], url: str, tokens: int, steps: int) -> tuple[float, list[StreamTiming]]:
    """(seconds until the last of 16 streams ended, each stream's timing)."""
    bodies = [{"prompt": PROMPTS[i % len(PROMPTS)], "max_new_tokens": tokens, "steps": steps, "seed": i,
               "temperature": 0.7} for i in range(STREAMS)]
    started = time.perf_counter()
    with ThreadPoolExecutor(STREAMS) as pool:
        timings = list(pool.map(lambda i: stream(clients[i], url, bodies[i], started), range(STREAMS)))
    return time.perf_counter() - started, timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def deploy(token: str, port: int) -> dict[str, str]:
    """Ray in this process and the two applications; their API URLs by name."""
    import ray
    from ray import serve

    from yipyap_jupyter.serve.app import Placement, build_app
    from yipyap_jupyter.serve.config import ServeConfig

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    config = ServeConfig(token=token, rate_limit_per_minute=0)
    urls = {}
    for name, replicas in (("one", 1), ("two", 2)):
        serve.run(build_app(config, Placement(replicas=replicas, cpus_per_replica=1.0)), name=name,
                  route_prefix=f"/{name}", blocking=False)
        urls[name] = f"http://127.0.0.1:{port}/{name}/api/diffusion"
    return urls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="rounds of 16 streams per application (medians)")
    p.add_argument("--pairs", type=int, default=21)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = "1"  # one torch thread per replica and in the Jupyter server
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as yipyap-serve starts Ray: replicas at the server's priority
    token = secrets.token_hex(12)
    headers = {"Authorization": f"token {token}"}
    with tempfile.TemporaryDirectory(prefix="yipyap-bench-serve-") as temporary:
        workdir = Path(temporary)
        os.environ["YIPYAP_SETTINGS_PATH"] = str(workdir / "settings.json")
        server, jupyter_url, jupyter_token = start_server("tiny", workdir, threads=1)
        from ray import serve

        try:
            urls = deploy(token, free_port())
            clients = [httpx.Client(headers=headers, timeout=300) for _ in range(STREAMS)]
            for url in urls.values():
                concurrent_round(clients, url, args.new_tokens, args.steps)  # warm-up
            rates: dict[str, list[float]] = {name: [] for name in urls}
            firsts: dict[str, list[float]] = {name: [] for name in urls}
            slowest_firsts: dict[str, list[float]] = {name: [] for name in urls}
            tails: dict[str, list[float]] = {name: [] for name in urls}
            spread: dict[str, set[str]] = {name: set() for name in urls}
            for _ in range(args.rounds):
                for name, url in urls.items():
                    wall, timings = concurrent_round(clients, url, args.new_tokens, args.steps)
                    rates[name].append(sum(t.tokens for t in timings) / wall)
                    firsts[name].append(statistics.median(t.first_step for t in timings))
                    slowest_firsts[name].append(max(t.first_step for t in timings))
                    tails[name].append(p95([t.total for t in timings]))
                    spread[name] |= {t.replica for t in timings}

            jupyter = httpx.Client(headers={"Authorization": f"token {jupyter_token}"}, timeout=300)
            body = {"prompt": PROMPTS[0], "max_new_tokens": args.new_tokens, "steps": args.steps, "seed": 0}
            through_serve, through_jupyter = [], []
            for _ in range(args.pairs):
                through_jupyter.append(stream(jupyter, jupyter_url, body, time.perf_counter()))
                through_serve.append(stream(clients[0], urls["one"], body, time.perf_counter()))
        finally:
            serve.shutdown()
            import ray

            ray.shutdown()
            server.terminate()
            server.wait(timeout=60)

    print(f"tiny, {args.new_tokens} new tokens, {args.steps} steps, one torch thread per replica, {os.cpu_count()} CPUs; "
          f"{STREAMS} concurrent streams, {args.rounds} rounds alternating (medians)")
    for name in urls:
        first, slowest = statistics.median(firsts[name]), statistics.median(slowest_firsts[name])
        print(f"  {name} replica(s): {statistics.median(rates[name]):7.1f} tok/s aggregate · first step median "
              f"{first * 1000:6.0f} ms, slowest {slowest * 1000:6.0f} ms · p95 request "
              f"{statistics.median(tails[name]) * 1000:6.0f} ms · replicas used {len(spread[name])}")
    gain = statistics.median(rates["two"]) / statistics.median(rates["one"])
    print(f"  2 replicas / 1 replica aggregate tok/s: {gain:.2f}x")
    serve_median = statistics.median(t.total for t in through_serve)
    jupyter_median = statistics.median(t.total for t in through_jupyter)
    paired = statistics.median(s.total / j.total for s, j in zip(through_serve, through_jupyter, strict=True))
    print(f"one stream, {args.pairs} pairs alternating: extension {jupyter_median * 1000:.1f} ms, "
          f"Serve {serve_median * 1000:.1f} ms (medians); of which the model's generation_time: extension "
          f"{statistics.median(t.generation for t in through_jupyter) * 1000:.1f} ms, Serve replica "
          f"{statistics.median(t.generation for t in through_serve) * 1000:.1f} ms")
    print(f"  Serve / extension, paired: {paired:.3f} (target <= {OVERHEAD_TARGET}: "
          f"{'met' if paired <= OVERHEAD_TARGET else 'MISSED'}); ratio of medians {serve_median / jupyter_median:.3f}")


if __name__ == "__main__":
    main()
