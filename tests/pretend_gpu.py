"""A pretend GPU for tests on machines without one: models "on cuda" really sit on the CPU.

`PretendGpu` holds at most `capacity` models and raises `torch.OutOfMemoryError` when
more are put on it; `fail_forward` makes a network's n-th forward pass raise, and
`full_while_on_gpu` every pass while the model is still on the GPU. Use with
the `fake_cuda` fixture, which makes torch report the GPU.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import pytest
import torch

from yipyap_jupyter.engine.model import DiffusionModel


class PretendGpu:
    """A GPU holding at most `capacity` models; "on cuda" models really run on the CPU."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capacity: int) -> None:
        self.capacity = capacity
        self.resident: weakref.WeakSet[DiffusionModel] = weakref.WeakSet()
        real_load = DiffusionModel.load.__func__
        real_to = DiffusionModel.to

        def load(cls: type, spec: Any, directory: Any, device: Any = "cpu", dtype: Any = None) -> DiffusionModel:
            if torch.device(device).type != "cuda":
                return real_load(cls, spec, directory, device, dtype)
            self._claim()
            model = real_load(cls, spec, directory, "cpu", dtype)
            self.resident.add(model)
            return model

        def to(model: DiffusionModel, device: Any) -> None:
            if torch.device(device).type == "cuda":
                self._claim()
                self.resident.add(model)
            else:
                self.resident.discard(model)
                real_to(model, device)

        monkeypatch.setattr(DiffusionModel, "load", classmethod(load))
        monkeypatch.setattr(DiffusionModel, "to", to)

    def _claim(self) -> None:
        if len(self.resident) >= self.capacity:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")


def fail_forward(model: DiffusionModel, error: Exception, on_call: int) -> None:
    """Make the network's `on_call`-th forward pass raise `error` (once)."""
    calls = 0

    def hook(module: torch.nn.Module, args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == on_call:
            raise error

    model.network.register_forward_pre_hook(hook)


def full_while_on_gpu(manager: Any, model: DiffusionModel) -> threading.Event:
    """Once the returned event is set, every pass of `model` runs out of memory until `manager` moved it to the CPU.

    What a GPU that cannot hold even one row does, however the requests happen to be batched.
    """
    full = threading.Event()

    def hook(module: torch.nn.Module, args: Any) -> None:
        if full.is_set() and manager.current().device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.network.register_forward_pre_hook(hook)
    return full
