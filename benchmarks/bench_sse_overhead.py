"""Overhead of the HTTP + SSE path over an in-process service call, on the same model.

Starts a real Jupyter server with the extension (a subprocess, one torch thread),
then times the same generation (a) through `DiffusionLLMService.generate` in this
process and (b) as `POST /api/diffusion/generate/stream`, read to its last frame.
Runs alternate so both see the same machine load; the ratio is from one run of
this script: the median over pairs of each stream's time over the in-process run
just before it (slow drifts of the machine's load cancel out), and the ratio of the
two medians. The server writes step frames at most every `frame_interval` seconds
(its default), each still its own frame. A benchmark, not a test.

    python benchmarks/bench_sse_overhead.py            # 31 runs each
    python benchmarks/bench_sse_overhead.py --model /path/to/checkpoint   # before `tiny` ships
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from jupyter_process import start_server, stop_server, stream_frames

PROMPT = 'def parse_args(argv=None):\n    """Parse the command line."""\n'


def time_sse(client: httpx.Client, url: str, body: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    frames = list(stream_frames(client, url, body))
    last = frames[-1] if frames else {}
    elapsed = time.perf_counter() - start
    if last.get("type") != "complete":
        raise SystemExit(f"stream ended with {last}")
    return elapsed, last


def main() -> None:
    from yipyap_jupyter.constants import TINY_MODEL_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(TINY_MODEL_DIR), help="model id or checkpoint directory (default: tiny)")
    p.add_argument("--runs", type=int, default=31)
    p.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not Path(args.model).exists() and "/" in args.model:
        raise SystemExit(f"no checkpoint at {args.model}")

    import torch

    from yipyap_jupyter.engine.runtime import DiffusionModelManager
    from yipyap_jupyter.service.service import DiffusionLLMService
    from yipyap_jupyter.settings import SettingsStore

    torch.set_num_threads(args.threads)
    body = {"prompt": PROMPT, "max_new_tokens": args.new_tokens, "steps": args.steps, "seed": 0}
    with tempfile.TemporaryDirectory(prefix="yipyap-bench-") as temporary:
        workdir = Path(temporary)
        manager = DiffusionModelManager()
        manager.load(args.model, device="cpu")
        service = DiffusionLLMService(manager, SettingsStore(workdir / "local-settings.json"), default_model=None)
        server, url, token = start_server(args.model, workdir, args.threads)
        try:
            with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=300) as client:
                service.generate(body)
                time_sse(client, url, body)  # warm-up both paths
                local, remote, frames = [], [], 0
                for _ in range(args.runs):
                    start = time.perf_counter()
                    done = service.generate(body)
                    local.append(time.perf_counter() - start)
                    elapsed, complete = time_sse(client, url, body)
                    remote.append(elapsed)
                    assert complete["raw_text"] == done.raw_text, "both paths must do the same work"
                    frames = len(complete["history"])
        finally:
            stop_server(server)
    local_median, remote_median = statistics.median(local), statistics.median(remote)
    paired = statistics.median(r / loc for r, loc in zip(remote, local, strict=True))
    print(f"model {args.model}: {args.new_tokens} new tokens, {args.steps} steps ({frames} step frames), "
          f"{args.threads} torch thread(s), {args.runs} runs each, alternating")
    print(f"in-process service.generate : median {local_median * 1000:8.1f} ms  "
          f"({', '.join(f'{t * 1000:.0f}' for t in local)})")
    print(f"HTTP + SSE generate/stream  : median {remote_median * 1000:8.1f} ms  "
          f"({', '.join(f'{t * 1000:.0f}' for t in remote)})")
    print(f"SSE / in-process, paired    : {paired:.3f}  (target <= 1.03: {'met' if paired <= 1.03 else 'MISSED'})")
    print(f"SSE / in-process ratio      : {remote_median / local_median:.3f}  "
          f"(+{(remote_median - local_median) * 1000:.1f} ms per generation, "
          f"{(remote_median - local_median) * 1000 / max(frames, 1):.2f} ms per step frame)")


if __name__ == "__main__":
    main()
