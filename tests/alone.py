"""A sampler program run alone on a network, as the samplers' own tests and the benchmarks call it.

The engine runs programs in batches (`engine.runtime.batch`); a batch of one row is the
same code path, so these helpers give what one request computes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from yipyap_jupyter.cancel import CancelToken
from yipyap_jupyter.engine.families.dream.sampler import dream_program
from yipyap_jupyter.engine.families.llada.sampler import llada_program
from yipyap_jupyter.engine.runtime.batch import run_alone
from yipyap_jupyter.engine.samplers.base import Program, SamplerStep
from yipyap_jupyter.engine.samplers.common import network_device


def sample(program: Callable[..., Program], network: nn.Module, canvas: torch.Tensor, *,
           cancel: CancelToken | None = None, **options: Any) -> Iterator[SamplerStep]:
    """The steps of `program(canvas, **options)` on `network`, the canvas moved to the network's device first."""
    return run_alone(network, program(canvas.to(network_device(network, canvas.device)), **options), cancel)


def llada_sample(network: nn.Module, canvas: torch.Tensor, **options: Any) -> Iterator[SamplerStep]:
    """LLaDA's sampler alone on `network` (options: `llada_program`'s, and `cancel`)."""
    return sample(llada_program, network, canvas, **options)


def dream_sample(network: nn.Module, canvas: torch.Tensor, **options: Any) -> Iterator[SamplerStep]:
    """Dream's sampler alone on `network` (options: `dream_program`'s, and `cancel`)."""
    return sample(dream_program, network, canvas, **options)
