"""What every sampler shares: the forward request, the step record and the seeded generator.

A fixed-length sampler is written as a *program* for one request: a generator that
yields a `Forward` (what the network should run next), receives that pass's logits,
and yields the `SamplerStep` it made of them. It never calls the network itself, so
a `DecodingBatch` (`engine.runtime.batch`) can run the passes of many programs as one packed
forward, and a request alone runs through the same batch with one row. Nothing in a
sampler knows about HTTP, widgets or text.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..kv_cache import KVCache
from ..packing import LogitPositions


@dataclass(frozen=True)
class Forward:
    """One pass a program asks for: `ids` (sequences, length), the window of its canvas from `start`.

    Two sequences under classifier-free guidance. With a `cache`, the window runs against it
    (an empty one is filled, from a full pass with `start` 0). The program is sent the logits
    of the window's positions `logits_at` (a range or the positions), or of all of them when None: the
    vocabulary head, the largest layer of a small model, runs only where the step reads.
    `inputs` are further keyword arguments for a network that cannot pack (a library's class,
    run one pass per row: `engine.runtime.batch`), such as its own cache or self-conditioning.
    """

    ids: torch.Tensor
    start: int = 0
    cache: KVCache | None = None
    logits_at: LogitPositions | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.ids.numel()


#: What a position of a step is (`SamplerStep.states`), for the views to draw each its own way:
#: still masked; a real token that may still change (uniform-state diffusion's draft); final;
#: final but replaced after it settled (token editing).
MASKED, UNSETTLED, SETTLED, EDITED = 0, 1, 2, 3
STATE_NAMES = ("masked", "unsettled", "settled", "edited")


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
        states: each canvas position's state (`MASKED` ...), 1-D tensor; None for a sampler of a
            masked family, whose positions are masked where the token is the mask and settled elsewhere.
        settled_end: where the final text ends when the states do not say it (a settled position of
            uniform-state diffusion's draft may still change); None: at the first position not settled.
        progress: the share of the run done, when the region does not tell it (it grows canvas by canvas).
        blocks_from: the canvas position the sampler's blocks are counted from (the block families: 0,
            their first block shared with the prompt's tail); None: the region's start.
    """

    step: int
    total_steps: int
    canvas: torch.Tensor
    changed: torch.Tensor
    confidences: torch.Tensor
    span: tuple[int, int]
    states: torch.Tensor | None = None
    settled_end: int | None = None
    progress: float | None = None
    blocks_from: int | None = None


def make_generator(seed: int | None, device: torch.device | str) -> torch.Generator:
    """A torch generator on `device`, seeded for reproducible sampling (random seed when None)."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


#: A request's sampler: yields `Forward`, is sent its logits (sequences, positions, vocab), yields the `SamplerStep`.
Program = Generator["Forward | SamplerStep", "torch.Tensor | None", None]
