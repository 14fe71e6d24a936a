"""Part 1 of the GPU run: out of memory on a real CUDA device, through a real Jupyter server on 127.0.0.1.

The server (a subprocess, `jupyter_process.start_server`) preloads a small random LLaDA checkpoint
with `device="auto"`, which puts it on the GPU. After a first generation, this process fills the
GPU's free memory with a ballast of its own, leaving `MARGIN` bytes, and asks for a generation
whose logits alone need more: the server's pass runs out of memory for real. What must follow:
a status frame saying so, the generation completing on the CPU, the model info reporting the
fallback, the same request again giving the same text, and the next request served. Then the fit
check, with the GPU full again: loading a ~1B checkpoint with `device="auto"` must choose the CPU
before loading anything, and with `device="cuda"` must run out of memory at load and fall back.

On a CPU (the dry run) nothing can run out of GPU memory: the same requests go through the same
server and routes, and the part says that the fallback was not measured.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
from gpu_parts import PROMPT, Budget, Context, Part, release_memory
from jupyter_process import start_server, stream_frames

#: GPU memory left free by the ballast: less than the large generation's logits need.
MARGIN = 64 * 2**20


class Ballast:
    """GPU memory this process holds so that only a margin stays free for the server (nothing on the CPU)."""

    def __init__(self, device: str) -> None:
        self.on_gpu = device == "cuda"
        self.blocks: list[Any] = []

    def fill(self, margin: int) -> int | None:
        """Allocate until `margin` bytes of the GPU are free; the bytes free then (None on the CPU)."""
        if not self.on_gpu:
            return None
        import torch

        size = 2**30
        while size >= 2**20:
            free, _ = torch.cuda.mem_get_info()
            if free - margin < 2**20:
                break
            try:
                self.blocks.append(torch.empty(min(size, free - margin), dtype=torch.uint8, device="cuda"))
            except torch.OutOfMemoryError:
                size //= 2
        return int(torch.cuda.mem_get_info()[0])

    def release(self) -> None:
        if self.blocks:
            import torch

            self.blocks.clear()
            torch.cuda.empty_cache()


def generation(client: httpx.Client, url: str, body: dict) -> dict[str, Any]:
    """One streamed generation: its status messages, step frames, end frame, seconds."""
    started = time.perf_counter()
    statuses: list[str] = []
    steps, end = 0, {}
    for frame in stream_frames(client, url, body):
        if frame.get("type") == "status":
            statuses.append(frame.get("message", ""))
        elif frame.get("type") == "step":
            steps += 1
        else:
            end = frame
    return {"seconds": round(time.perf_counter() - started, 2), "statuses": statuses, "step_frames": steps,
            "end": end.get("type"), "text": end.get("text"),
            "error": {k: end.get(k) for k in ("error_type", "message")} if end.get("type") == "error" else None}


def load(client: httpx.Client, url: str, directory: str, device: str) -> dict[str, Any]:
    """`POST /models/{directory}/load` with `device`: where the model went, or the error body."""
    started = time.perf_counter()
    response = client.post(f"{url}/models/{quote(directory, safe='')}/load", json={"device": device})
    body = response.json()
    keys = ("device", "dtype", "fallback", "parameters") if response.is_success else ("error_type", "message")
    return {"status_code": response.status_code, "seconds": round(time.perf_counter() - started, 2),
            **{key: body.get(key) for key in keys}}


def fell_back(statuses: list[str]) -> str | None:
    return next((s for s in statuses if "out of memory" in s), None)


def out_of_memory(ctx: Context, budget: Budget, part: Part) -> None:
    small_model = str(ctx.checkpoint("oom_model"))
    big_model = str(ctx.checkpoint("llada"))  # built now: once the GPU is full, nothing else may need it
    release_memory()  # the weights were drawn on the GPU: hand the allocator's cache back
    tokens = ctx.sizes["oom_tokens"]
    small = {"prompt": PROMPT, "max_new_tokens": 32, "steps": 8, "block_length": 32, "seed": 0}
    large = {"prompt": PROMPT, "max_new_tokens": tokens, "steps": 2, "block_length": tokens, "seed": 1}
    workdir = ctx.scratch / "oom-server"
    workdir.mkdir()
    server, url, token = start_server(small_model, workdir, threads=ctx.threads, timeout=budget.left())
    ctx.children.append(server)
    ballast = Ballast(ctx.device)
    try:
        with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=max(budget.left(), 1.0)) as client:
            loaded = client.get(f"{url}/models/current").json()
            on = loaded.get("device")
            part.details["loaded"] = {k: loaded.get(k) for k in ("device", "dtype", "parameters")}
            first = generation(client, url, small)
            part.row(f"32 tokens on {on}, before any memory runs short", tokens_per_s=32 / first["seconds"],
                     note=f"{first['end']}, {first['step_frames']} step frames")
            free = ballast.fill(MARGIN)
            part.details["gpu_free_after_ballast_mib"] = None if free is None else round(free / 2**20)
            oom = generation(client, url, large)
            after = client.get(f"{url}/models/current").json()
            again = generation(client, url, large)
            following = generation(client, url, small)
            fallback = fell_back(oom["statuses"])
            part.row(f"{tokens} tokens that cannot fit", tokens_per_s=tokens / oom["seconds"],
                     note=f"{oom['end']} in {oom['seconds']} s; " + (f"stream said {fallback!r}" if fallback else
                                                                   "no out-of-memory status"))
            part.row("the same request again", tokens_per_s=tokens / again["seconds"],
                     same=again["text"] == oom["text"] and oom["end"] == "complete",
                     note=f"{again['end']} on {after.get('device')}")
            part.row("the next request", tokens_per_s=32 / following["seconds"], note=f"{following['end']}")
            checks = {
                "fallback in the stream": fallback is not None,
                "fallback in the model info": bool(after.get("fallback")) and after.get("device") == "cpu",
                "the generation that ran out completed": oom["end"] == "complete",
                "the same request again gave the same text": again["text"] == oom["text"],
                "the next request was served": following["end"] == "complete",
            }
            free = ballast.fill(MARGIN)  # the model left the GPU: fill what it gave back
            part.details["gpu_free_at_fit_check_mib"] = None if free is None else round(free / 2**20)
            by_auto = load(client, url, big_model, "auto")
            by_cuda = load(client, url, big_model, "cuda")
            part.row("fit check: ~1B model, device=auto", note=f"{by_auto['status_code']}: on {by_auto.get('device')}"
                     f" in {by_auto['seconds']} s" + (f" ({by_auto['message']})" if by_auto.get("message") else ""))
            part.row("fit check: ~1B model, device=cuda", note=f"{by_cuda['status_code']}: on {by_cuda.get('device')},"
                     f" fallback {by_cuda.get('fallback')!r}" + (f" ({by_cuda['message']})" if by_cuda.get("message")
                                                                 else ""))
            checks["auto placed the model that cannot fit on the cpu"] = by_auto.get("device") == "cpu"
            part.details.update(first=first, out_of_memory=oom, info_after=after, again=again, following=following,
                                fit_auto=by_auto, fit_cuda=by_cuda, checks=checks)
    finally:
        ballast.release()
        server.terminate()
        server.wait(30)
        ctx.children.remove(server)
    part.details["real_out_of_memory"] = ctx.device == "cuda" and str(on).startswith("cuda")  # "cuda:0"
    if not part.details["real_out_of_memory"]:
        part.note(f"not measured: real out-of-memory needs CUDA and the full run (here the server ran the model on"
                  f" {on} and no GPU was filled); the same requests went through the same server routes and were"
                  " served")
        return
    checks["an explicit cuda load fell back"] = bool(by_cuda.get("fallback")) and by_cuda.get("device") == "cpu"
    failed = [name for name, passed in checks.items() if not passed]
    part.note("every check passed: " + ", ".join(checks) if not failed else "CHECKS FAILED: " + ", ".join(failed))
