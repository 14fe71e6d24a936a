"""Dream's sampler: `diffusion_generate` with the origin / maskgit_plus / topk_margin / entropy algorithms.

Time runs from 1 down to `eps` in `steps` equal steps. `origin` commits each
masked position with probability 1 - s/t; the other algorithms commit the
int(masks * (1 - s/t)) positions they are most confident about (all remaining
masks on the last step), ranked by top probability, top1 - top2 margin, or
negative entropy, optionally sampled with `alg_temp`. Dream was trained from an
autoregressive model, so the prediction for position i is read from the
network's output at i - 1 (position 0 keeps its own).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ValidationError
from ...cancel import CancelToken
from .base import SamplerStep
from .common import DREAM_ALGS, check_token_shaping, masked_span, network_device, sample_tokens

ALGS = ("origin", *DREAM_ALGS)


@torch.no_grad()
def dream_sample(
    network: nn.Module,
    canvas: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    alg: str = "maskgit_plus",
    alg_temp: float = 0.0,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = None,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[SamplerStep]:
    """Denoise the masked span of `canvas` (1, L) in `steps` steps, yielding each step.

    Args:
        network: Dream mask predictor returning unshifted logits (batch, seq, vocab).
        canvas: prompt + masks, or prefix + masks + suffix; the masks are one contiguous run.
        mask_id: the mask token.
        steps: number of steps; every mask is filled by the last one.
        alg: "origin", "maskgit_plus", "topk_margin" or "entropy".
        alg_temp: 0 commits the most confident positions; > 0 samples them from
            softmax(confidence / alg_temp).
        temperature, top_p, top_k: shape the token draw; temperature 0 is greedy.
        eps: the final time of the schedule linspace(1, eps, steps + 1).
        generator: source of all randomness.
        cancel: checked before every step.

    Yields:
        One `SamplerStep` per step; `confidences` are the probabilities of the committed tokens.

    Raises:
        ValidationError: bad arguments.
        GenerationCancelled: `cancel` was set.
    """
    start, end = masked_span(canvas, mask_id)
    if steps < 1:
        raise ValidationError(f"steps must be >= 1, got {steps}")
    if alg not in ALGS:
        raise ValidationError(f"alg must be one of {', '.join(ALGS)}, got {alg!r}")
    if alg_temp is not None and alg_temp < 0:
        raise ValidationError(f"alg_temp must be >= 0, got {alg_temp}")
    if not 0 < eps < 1:
        raise ValidationError(f"eps must be in (0, 1), got {eps}")
    check_token_shaping(temperature, top_p, top_k)

    x = canvas.to(network_device(network, canvas.device)).clone()
    timesteps = torch.linspace(1, eps, steps + 1, device=x.device)
    for i in range(steps):
        if cancel is not None:
            cancel.raise_if_cancelled(i + 1)
        mask_index = x == mask_id
        logits = network(x)
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        mask_logits = logits[mask_index]
        mask_positions = mask_index[0].nonzero().flatten()
        t, s = timesteps[i], timesteps[i + 1]

        if alg == "origin":
            p_transfer = 1 - s / t if i < steps - 1 else 1
            transfer = torch.rand(mask_positions.shape, device=x.device, generator=generator) < p_transfer
            changed = mask_positions[transfer]
            _, x0, token_prob = sample_tokens(
                mask_logits[transfer], alg=alg, temperature=temperature, top_p=top_p, top_k=top_k, generator=generator
            )
        else:
            confidence, x0, token_prob = sample_tokens(
                mask_logits, alg=alg, temperature=temperature, top_p=top_p, top_k=top_k, generator=generator
            )
            num_mask_token = mask_index.sum() / mask_index.shape[0]
            number_transfer_tokens = int(num_mask_token * (1 - s / t)) if i < steps - 1 else int(num_mask_token)
            full_confidence = torch.full_like(x, -torch.inf, dtype=logits.dtype)
            full_confidence[mask_index] = confidence
            if number_transfer_tokens == 0:
                transfer_index = mask_positions[:0]
            elif not alg_temp:
                _, transfer_index = torch.topk(full_confidence[0], number_transfer_tokens)
            else:
                weights = F.softmax(full_confidence[0] / alg_temp, dim=-1)
                transfer_index = torch.multinomial(weights, number_transfer_tokens, generator=generator)
            changed = transfer_index.sort().values
            # x0 / token_prob follow the order of the masked positions; pick the committed ones
            rank_in_masks = torch.searchsorted(mask_positions, changed)
            x0, token_prob = x0[rank_in_masks], token_prob[rank_in_masks]
        x[0, changed] = x0

        yield SamplerStep(
            step=i + 1,
            total_steps=steps,
            canvas=x[0].to("cpu", copy=True),
            changed=changed.cpu(),
            confidences=token_prob.float().cpu(),
            span=(start, end),
        )
