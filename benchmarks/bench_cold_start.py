"""Where a fresh process's first generation spends its time: imports, the load of `tiny`, the first run.

Each run is a new Python process (as a new kernel or `yipyap-diffuse` is) that times its phases:
importing torch, importing the rest (transformers, tokenizers, our package), loading `tiny` (with
its check pass), the first generation and a second, identical one. Prints the median of each phase
over `--runs` processes and the first generation's time over the second's.

    python benchmarks/bench_cold_start.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PHASES = ("import torch", "import the rest", "load tiny", "first generation", "second generation")

CHILD = """
import json, time
marks = [time.perf_counter()]
import torch
marks.append(time.perf_counter())
import transformers
from yipyap_jupyter.kernel import DiffusionClient
marks.append(time.perf_counter())
client = DiffusionClient("local")
client.load("tiny", device="cpu")
marks.append(time.perf_counter())
for _ in range(2):
    client.generate("def fibonacci(n):", seed=0)
    marks.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(marks, marks[1:])]))
"""


def one_process(settings: Path) -> list[float]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "YIPYAP_SETTINGS_PATH": str(settings),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600, env=env)
    if run.returncode:
        raise SystemExit(run.stderr[-2000:])
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes to time (default 5)")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        runs = [one_process(Path(scratch) / "settings.json") for _ in range(args.runs)]
    medians = [statistics.median(run[i] for run in runs) for i in range(len(PHASES))]
    for phase, seconds in zip(PHASES, medians):
        print(f"{phase:<20} {seconds:6.2f} s")
    print(f"first generation / second: {statistics.median(run[3] / run[4] for run in runs):.2f}x "
          f"(median of {args.runs} processes); from start to the first text: {sum(medians[:4]):.2f} s")


if __name__ == "__main__":
    main()
