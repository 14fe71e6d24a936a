"""`benchmarks/gpu_run.py --dry-run`: every part of the prepared GPU run still runs, on the CPU at toy sizes.

The GPU run is only worth having if it works the first time a GPU is lent, so the suite runs its
dry run (a subprocess, killed if it overstays) and reads what it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = {"out_of_memory", "batching", "caches", "diffusion_gemma", "block_families", "ray_serve"}
TIMEOUT_S = 240  # the dry run aims at well under 2 minutes; this box is shared and slow


def test_dry_run_writes_every_part(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "gpu_run.py"), "--dry-run", "--out", str(out)],
                               cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"the dry run took over {TIMEOUT_S} s:\n{output[-3000:]}") from None
    assert process.returncode == 0, output[-3000:]

    report = json.loads((out / "gpu_run.json").read_text(encoding="utf-8"))
    assert report["environment"]["dry_run"] is True and report["environment"]["torch"]
    parts = report["parts"]
    assert set(parts) == PARTS
    for name, part in parts.items():
        # partial: a busy machine may cut a part short at its budget, and the part then says so
        assert part["status"] in ("ok", "partial", "skipped"), \
            f"{name}: {part['notes']}\n{part['details'].get('traceback')}"
        assert part["seconds"] <= part["budget_s"] + 30, f"{name} overstayed its budget"
        if part["status"] != "ok":
            assert part["notes"], f"{name} was cut short or skipped without saying why"
    for name in ("out_of_memory", "batching", "caches"):  # what exists on every machine runs
        assert parts[name]["status"] != "skipped" and parts[name]["rows"], name

    oom = parts["out_of_memory"]["details"]
    assert oom["real_out_of_memory"] is False  # a CPU cannot run out of GPU memory, and the run says so
    assert any("not measured: real out-of-memory needs CUDA" in n for n in parts["out_of_memory"]["notes"])
    assert oom["out_of_memory"]["end"] == "complete" and oom["following"]["end"] == "complete"
    assert oom["again"]["text"] == oom["out_of_memory"]["text"]
    assert oom["fit_auto"]["device"] == "cpu" and oom["fit_cuda"]["error_type"] == "validation"

    batching = parts["batching"]["rows"]
    assert {row["setting"].rsplit("N=", 1)[1] for row in batching} == {"1", "4", "8", "16"}
    assert all(row["same"] is True for row in batching), "a batched text differs from its solo run on the CPU"
    caches = {row["setting"].rsplit(": ", 1)[1] for row in parts["caches"]["rows"]}
    assert caches == {"plain", "prefix", "dual", "dual+t0.9"}

    table = (out / "gpu_run.md").read_text(encoding="utf-8")
    assert "| part | setting |" in table and "dual+t0.9" in table
    assert table.strip() in output  # and printed
