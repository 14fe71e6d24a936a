"""transformers' own DiffusionGemma `generate`, seeded and with its decoder passes counted: what our runs match.

The library draws each canvas's random tokens from torch's global generator, so
`torch.manual_seed(seed)` right before `generate` is the run our seeded request reproduces,
and every decoder pass is one of our steps.
"""

from __future__ import annotations

from typing import Any

import torch


def seeded_generate(model: Any, prompt: list[int], seed: int, **options: Any) -> tuple[list[int], int]:
    """`torch.manual_seed(seed); model.generate(prompt, **options)`: its sequence (the prompt, then the new tokens)
    and the decoder passes it ran."""
    passes = 0
    forward = model.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal passes
        passes += 1
        return forward(*args, **kwargs)

    model.forward = counted
    try:
        torch.manual_seed(seed)
        sequence = model.generate(torch.tensor([prompt], device=model.device), **options).sequences[0].tolist()
    finally:
        del model.forward
    return sequence, passes
