"""Latency of the quick routes while generations queue up: `GET /models` with 40 generations waiting.

Starts a real Jupyter server with the extension (a subprocess on 127.0.0.1, one torch
thread, rate limit off), times `GET /models` `--samples` times on the idle server, then
fires `--generations` non-streaming generations at once and, while they are queued or
running, times it again as often. Prints p50/p99 of both and their ratio (loaded / idle,
measured in the same run), and whether the loaded p99 is under the target (250 ms).
Loopback only; bounded by `--samples`. A benchmark, not a test.

    python benchmarks/bench_server_load.py
    python benchmarks/bench_server_load.py --generations 40 --samples 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from jupyter_process import start_server, stop_server

TARGET_P99_MS = 250.0


async def latencies(client: httpx.AsyncClient, url: str, samples: int) -> list[float]:
    """`samples` GET /models latencies in ms, 10 ms apart."""
    taken = []
    for _ in range(samples):
        start = time.perf_counter()
        response = await client.get(f"{url}/models")
        taken.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        await asyncio.sleep(0.01)
    return taken


async def measure(url: str, token: str, generations: int, samples: int,
                  body: dict) -> tuple[list[float], list[float], int, int]:
    """(GET /models latencies in ms idle, and while generations run; generations answered 200; still running)."""
    limits = httpx.Limits(max_connections=generations + 4)
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=600, limits=limits) as client:
        await client.get(f"{url}/models")  # warm-up
        idle = await latencies(client, url, samples)
        work = [asyncio.ensure_future(client.post(f"{url}/generate", json=body)) for _ in range(generations)]
        await asyncio.sleep(0.5)  # let them reach the server and queue
        loaded = await latencies(client, url, samples)
        running = sum(not task.done() for task in work)
        answers = await asyncio.gather(*work)
    return idle, loaded, sum(a.status_code == 200 for a in answers), running


def main() -> None:
    from yipyap_jupyter.constants import TINY_MODEL_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(TINY_MODEL_DIR), help="model id or checkpoint directory (default: tiny)")
    p.add_argument("--generations", type=int, default=40)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args()
    body = {"prompt": "def parse_args(argv=None):\n", "max_new_tokens": args.new_tokens, "steps": args.steps}
    with tempfile.TemporaryDirectory(prefix="yipyap-bench-") as temporary:
        server, url, token = start_server(args.model, Path(temporary))
        try:
            idle, loaded, answered, running = asyncio.run(measure(url, token, args.generations, args.samples, body))
        finally:
            stop_server(server)
    print(f"model {args.model}: {args.samples} GET /models idle, then {args.samples} while {args.generations}"
          f" generations of {args.new_tokens} tokens / {args.steps} steps fired at once ran")
    print(f"generations still queued or running when sampling ended: {running}; answered 200: {answered}")
    figures = {}
    for name, taken in (("idle", idle), ("loaded", loaded)):
        figures[name] = statistics.median(taken), statistics.quantiles(taken, n=100, method="inclusive")[98]
        print(f"GET /models, {name:>6}: p50 {figures[name][0]:.1f} ms, p99 {figures[name][1]:.1f} ms,"
              f" max {max(taken):.1f} ms")
    (idle50, idle99), (p50, p99) = figures["idle"], figures["loaded"]
    print(f"loaded / idle: p50 {p50 / idle50:.2f}x, p99 {p99 / idle99:.2f}x")
    print(f"target loaded p99 < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
