"""What every sampler shares: the step record, the cancellation token, the seeded generator.

A sampler is a generator function that yields one `SamplerStep` per denoising
step. Callers (the service, benchmarks, tests) consume the iterator; nothing in
a sampler knows about HTTP, widgets or text.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch

from ...errors import GenerationCancelled


@dataclass(frozen=True)
class SamplerStep:
    """The state after one denoising step (batch size one).

    Attributes:
        step: 1-based index of this step.
        total_steps: steps planned; for variable-length infilling an upper bound.
        canvas: the whole sequence now (prompt and generation), 1-D LongTensor on the CPU.
        changed: positions in `canvas` committed by this step, 1-D LongTensor.
        confidences: the sampler's confidence for each `changed` position, 1-D float tensor.
        span: (start, end) of the generated region in `canvas`; prompt / prefix before it,
            suffix (if any) after it.
    """

    step: int
    total_steps: int
    canvas: torch.Tensor
    changed: torch.Tensor
    confidences: torch.Tensor
    span: tuple[int, int]


class CancelToken:
    """Thread-safe flag a sampler checks once per step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, step: int) -> None:
        """Raise `GenerationCancelled` if `cancel()` was called."""
        if self._event.is_set():
            raise GenerationCancelled(step)


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch generator on `device`, seeded for reproducible sampling (random seed when None)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
