"""What every sampler shares: the step record and the seeded generator.

A sampler is a generator function that yields one `SamplerStep` per denoising
step. Callers (the service, benchmarks, tests) consume the iterator; nothing in
a sampler knows about HTTP, widgets or text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch generator on `device`, seeded for reproducible sampling (random seed when None)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator
