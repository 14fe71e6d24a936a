"""Latency of the quick routes while generations queue up: `GET /models` with 40 generations waiting.

Starts a real Jupyter server with the extension (a subprocess on 127.0.0.1, one torch
thread, rate limit off), fires `--generations` non-streaming generations at once, and
while they are queued or running times `GET /models` again and again. Prints p50/p99
and whether p99 is under the target (250 ms). Loopback only; bounded by `--samples`.
A benchmark, not a test.

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


async def measure(url: str, token: str, generations: int, samples: int, body: dict) -> tuple[list[float], int, int]:
    """(GET /models latencies in ms, generations answered 200, generations still running when sampling ended)."""
    limits = httpx.Limits(max_connections=generations + 4)
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=600, limits=limits) as client:
        await client.get(f"{url}/models")  # warm-up
        work = [asyncio.ensure_future(client.post(f"{url}/generate", json=body)) for _ in range(generations)]
        await asyncio.sleep(0.5)  # let them reach the server and queue
        latencies = []
        for _ in range(samples):
            start = time.perf_counter()
            response = await client.get(f"{url}/models")
            latencies.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            await asyncio.sleep(0.01)
        running = sum(not task.done() for task in work)
        answers = await asyncio.gather(*work)
    return latencies, sum(a.status_code == 200 for a in answers), running


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
            latencies, answered, running = asyncio.run(measure(url, token, args.generations, args.samples, body))
        finally:
            stop_server(server)
    quantiles = statistics.quantiles(latencies, n=100)
    p50, p99 = statistics.median(latencies), quantiles[98]
    print(f"model {args.model}: {args.generations} generations of {args.new_tokens} tokens / {args.steps} steps"
          f" fired at once; {args.samples} GET /models while they ran")
    print(f"generations still queued or running when sampling ended: {running}; answered 200: {answered}")
    print(f"GET /models: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms")
    print(f"target p99 < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
