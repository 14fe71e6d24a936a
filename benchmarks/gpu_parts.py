"""What every part of the GPU run (`gpu_run.py`) shares: its time budget, its record, the run's context.

Kept apart from `gpu_run.py` so that the parts in other modules and the script itself see one
`Skipped` class (a script runs as `__main__`, and importing it again would make a second one).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_process import REPO

sys.path.insert(0, str(REPO / "tests"))  # `checkpoints`: the random checkpoint builders the tests use

#: What the parts that go through the service ask for (words the random checkpoints' tokenizers know).
PROMPT = "once upon a time there was a cat"


class Skipped(Exception):
    """A part (or what is left of it) does not run here; the message says why."""


class Budget:
    """The seconds a part may take, never past the end of the whole run."""

    def __init__(self, seconds: float, run_ends: float) -> None:
        self.seconds = seconds
        self.ends = min(time.monotonic() + seconds, run_ends)

    def left(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def check(self, needed: float, what: str) -> None:
        """Raise `Skipped` when `what` (expected to take `needed` seconds) no longer fits."""
        if needed > self.left():
            raise Skipped(f"{what}: needs about {needed:.0f} s, {self.left():.0f} s of the part's budget left")


@dataclass
class Part:
    """What a part measured: rows of the table, lines worth reading (skips, checks), the rest for the JSON."""

    name: str
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    cut_short: bool = False  #: a budget check skipped some of it

    def row(self, setting: str, **figures: Any) -> None:
        self.rows.append({"part": self.name, "setting": setting, **figures})

    def note(self, line: str) -> None:
        print(f"  [{self.name}] {line}", flush=True)
        self.notes.append(line)

    def skip(self, skipped: Skipped) -> None:
        """Record that what `skipped` names did not run (the rest of the part goes on)."""
        self.cut_short = True
        self.note(str(skipped))


class Context:
    """What the parts share: the device, sizes, a scratch folder, random checkpoints built once, child processes."""

    def __init__(self, dry_run: bool, sizes: dict[str, Any], scratch: Path) -> None:
        import torch

        self.dry_run = dry_run
        self.sizes = sizes
        self.device = "cpu" if dry_run else "cuda"
        self.dtype = torch.float32 if dry_run else torch.bfloat16
        self.threads = 1 if dry_run else min(16, os.cpu_count() or 1)
        self.scratch = scratch
        self.children: list[Any] = []  # server processes, stopped by pid if the watchdog fires
        self.built: dict[str, float] = {}  # checkpoint -> seconds it took to build
        self._checkpoints: dict[str, Path] = {}

    def checkpoint(self, name: str) -> Path:
        """The random checkpoint `name` ("llada", "dream", "oom_model"), built on first use."""
        if name not in self._checkpoints:
            from checkpoints import make_dream_checkpoint, make_llada_checkpoint

            started = time.perf_counter()
            make = make_dream_checkpoint if name == "dream" else make_llada_checkpoint
            self._checkpoints[name] = make(self.scratch / name, device=self.device, dtype=self.dtype,
                                           **self.sizes[name])
            self.built[name] = round(time.perf_counter() - started, 1)
        return self._checkpoints[name]


def gpu_memory_mib() -> float | None:
    """Peak GPU memory this process allocated since the last reset (None without a GPU)."""
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None


def release_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def serve(ctx: Context, directory: Path, **manager_options: Any) -> tuple[Any, Any, Any]:
    """A manager with `directory` loaded on the run's device, and a service over it: (manager, service, info)."""
    from yipyap_jupyter.engine.runtime import DiffusionModelManager
    from yipyap_jupyter.service.service import DiffusionLLMService
    from yipyap_jupyter.settings import SettingsStore

    manager = DiffusionModelManager(**manager_options)
    service = DiffusionLLMService(manager, SettingsStore(ctx.scratch / "settings.json"), default_model=None)
    return manager, service, manager.load(str(directory), device=ctx.device)


def millions(parameters: int) -> str:
    """A parameter count for a table: `1034M`, or `0.41M` for a toy."""
    return f"{parameters / 1e6:.0f}M" if parameters >= 1e7 else f"{parameters / 1e6:.2f}M"
