"""Overhead of the HTTP + SSE path over an in-process service call, on the same model.

Starts a real Jupyter server with the extension (a subprocess, one torch thread),
then times the same generation (a) through `DiffusionLLMService.generate` in this
process and (b) as `POST /api/diffusion/generate/stream`, read to its last frame.
Runs alternate so both see the same machine load; the ratio is from one run of
this script. A benchmark, not a test.

    python benchmarks/bench_sse_overhead.py --runs 7
    python benchmarks/bench_sse_overhead.py --model /path/to/checkpoint   # before `tiny` ships
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
PROMPT = 'def parse_args(argv=None):\n    """Parse the command line."""\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: str, workdir: Path, threads: int) -> tuple[subprocess.Popen, str, str]:
    port, token = free_port(), secrets.token_hex(12)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(workdir / "config"), "JUPYTER_DATA_DIR": str(workdir / "data"),
           "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads),
           "YIPYAP_SETTINGS_PATH": str(workdir / "settings.json"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={workdir}",
               f"--IdentityProvider.token={token}", "--ServerApp.jpserver_extensions={'yipyap_jupyter': True}",
               f"--DiffusionLLMApp.default_model={model}", "--DiffusionLLMApp.preload=True",
               "--DiffusionLLMApp.rate_limit_per_minute=0", f"--DiffusionLLMApp.log_dir={workdir / 'logs'}"]
    log = (workdir / "server.log").open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/diffusion"
    headers = {"Authorization": f"token {token}"}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: see {workdir / 'server.log'}")
        try:
            if httpx.get(f"{url}/models/current", headers=headers).json().get("loaded"):
                return server, url, token
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not load the model in time")


def time_sse(client: httpx.Client, url: str, body: dict) -> tuple[float, dict]:
    start = time.perf_counter()
    last = {}
    with client.stream("POST", f"{url}/generate/stream", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: "):
                last = json.loads(line[6:])
    elapsed = time.perf_counter() - start
    if last.get("type") != "complete":
        raise SystemExit(f"stream ended with {last}")
    return elapsed, last


def main() -> None:
    from yipyap_jupyter.constants import TINY_MODEL_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(TINY_MODEL_DIR), help="model id or checkpoint directory (default: tiny)")
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not Path(args.model).exists() and "/" in args.model:
        raise SystemExit(f"no checkpoint at {args.model}")

    import torch

    from yipyap_jupyter.engine.manager import DiffusionModelManager
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
            server.terminate()
            server.wait(timeout=60)
    local_median, remote_median = statistics.median(local), statistics.median(remote)
    print(f"model {args.model}: {args.new_tokens} new tokens, {args.steps} steps ({frames} step frames), "
          f"{args.threads} torch thread(s), {args.runs} runs each, alternating")
    print(f"in-process service.generate : median {local_median * 1000:8.1f} ms  "
          f"({', '.join(f'{t * 1000:.0f}' for t in local)})")
    print(f"HTTP + SSE generate/stream  : median {remote_median * 1000:8.1f} ms  "
          f"({', '.join(f'{t * 1000:.0f}' for t in remote)})")
    print(f"SSE / in-process ratio      : {remote_median / local_median:.2f}  "
          f"(+{(remote_median - local_median) * 1000:.1f} ms per generation, "
          f"{(remote_median - local_median) * 1000 / max(frames, 1):.2f} ms per step frame)")


if __name__ == "__main__":
    main()
