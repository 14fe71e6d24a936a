"""What the samplers share: checking the canvas, the cache windows, the network's device, Dream's token draw.

Dream's `diffusion_generate` and DreamOn's infilling loop draw tokens and rank
positions the same way (`sample_tokens` in Dream's generation utilities), so
both samplers call `sample_tokens` here.
"""

from __future__ import annotations

from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ValidationError

DREAM_ALGS = ("maskgit_plus", "topk_margin", "entropy")
#: Fast-dLLM's block-wise key/value caches (see `engine.kv_cache`); "none" runs the whole canvas every step.
CACHES = ("none", "prefix", "dual")


def masked_span(canvas: torch.Tensor, mask_id: int) -> tuple[int, int]:
    """(start, end) of the one contiguous run of `mask_id` in a (1, L) canvas.

    Raises:
        ValidationError: the canvas is not (1, L) integer ids, has no mask, or its masks are not contiguous.
    """
    if not isinstance(canvas, torch.Tensor) or canvas.dim() != 2 or canvas.shape[0] != 1:
        raise ValidationError("canvas must be a (1, L) tensor of token ids")
    if canvas.dtype.is_floating_point or canvas.dtype.is_complex or canvas.dtype == torch.bool:
        raise ValidationError("canvas must hold integer token ids")
    positions = (canvas[0] == mask_id).nonzero().flatten()
    if positions.numel() == 0:
        raise ValidationError("canvas has no mask positions to generate")
    start, end = int(positions[0]), int(positions[-1]) + 1
    if positions.numel() != end - start:
        raise ValidationError("the masked positions of the canvas must form one contiguous run")
    return start, end


def shifted_rows(positions: torch.Tensor, window_start: int = 0) -> torch.Tensor:
    """Dream's logit shift: the output rows, of a pass over canvas positions `window_start`..,
    that predict `positions`: the row before each (the pass's first row predicts its own position)."""
    return (positions - window_start - 1).clamp(min=0)


#: The fewest positions a pass computes logits for. The CPU matrix library takes other kernels
#: for products of fewer than 12 rows, which round differently from the product over the whole
#: window that the official loops compute; from 12 rows on, each row's logits are the same bits.
MIN_LOGIT_ROWS = 32


def logits_for(rows: torch.Tensor, window: int) -> tuple[tuple[int, int], torch.Tensor]:
    """Which positions of a pass over `window` positions need logits, to read output rows `rows` (ascending).

    The network computes its vocabulary head only there: one contiguous range covering `rows`,
    widened to `MIN_LOGIT_ROWS` positions (or the whole window), which is what a step reads of
    a canvas mostly masked elsewhere or committed. Returns the range (start, end) and `rows`
    counted from its start.
    """
    if rows.numel() == 0:
        return (0, 0), rows
    start, end = int(rows[0]), int(rows[-1]) + 1
    end = min(window, max(end, start + MIN_LOGIT_ROWS))
    start = max(0, min(start, end - MIN_LOGIT_ROWS))
    return (start, end), rows - start


def window_of(cache: str, step_in_block: int, length: int, block_start: int, block_end: int) -> tuple[int, int]:
    """The canvas positions (start, end) the network runs on at this step of a block.

    The whole canvas without a cache and at a block's first step (which refreshes the
    cache); then the block plus everything right of it (prefix cache) or the block alone (dual).
    """
    if cache == "none" or step_in_block == 0:
        return 0, length
    return block_start, length if cache == "prefix" else block_end


def select_positions(
    scores: torch.Tensor,
    rows: torch.Tensor,
    window: int,
    *,
    count: int = 0,
    threshold: float | None = None,
    alg_temp: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The positions one step commits (ascending), out of `rows` (ascending) scored by `scores`.

    The `count` best-scored rows (drawn from softmax(scores / alg_temp) when `alg_temp` > 0);
    or, with `threshold`, every row scoring at least it and always the best one (Fast-dLLM's
    rule). Scores are ranked in a vector over the whole window of `window` positions the
    network ran on, -inf where nothing may be committed, as the reference loops rank them,
    so ties resolve as there.
    """
    full = torch.full((window,), -torch.inf, dtype=scores.dtype, device=scores.device)
    full[rows] = scores
    if threshold is not None:
        ranked, order = torch.topk(full, k=rows.numel())
        keep = ranked >= threshold
        keep[0] = True
        chosen = order[keep]
    elif count == 0:
        chosen = rows[:0]
    elif alg_temp:
        chosen = torch.multinomial(F.softmax(full / alg_temp, dim=-1), count, generator=generator)
    else:
        chosen = torch.topk(full, k=count).indices
    return chosen.sort().values


def network_device(network: nn.Module, fallback: torch.device) -> torch.device:
    """The device of the network's weights (`fallback` for a network without parameters)."""
    for parameter in network.parameters():
        return parameter.device
    return fallback


def check_token_shaping(temperature: float, top_p: float | None, top_k: int | None) -> None:
    """Reject temperature / top_p / top_k values that `sample_tokens` cannot use."""
    if temperature < 0:
        raise ValidationError(f"temperature must be >= 0, got {temperature}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValidationError(f"top_p must be in (0, 1], got {top_p}")
    if top_k is not None and top_k < 1:
        raise ValidationError(f"top_k must be >= 1, got {top_k}")


class TokenShaping(TypedDict):
    """The keyword arguments of `sample_tokens` that shape the draw, the same for every step of a run."""

    temperature: float
    top_p: float | None
    top_k: int | None
    generator: torch.Generator | None


def sample_tokens(
    logits: torch.Tensor,
    *,
    alg: str,
    temperature: float,
    top_p: float | None,
    top_k: int | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw one token per row of `logits` (rows, vocab) the way Dream does.

    Returns `(confidence, x0, token_prob)`: the score that ranks positions for
    `alg` (top probability, top1 - top2 margin, or negative entropy), the drawn
    tokens, and the probability of each drawn token (what callers report).
    Temperature 0 takes the most probable token.
    """
    if temperature > 0:
        logits = logits / temperature
    if top_p is not None and top_p < 1:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cumulative > top_p
        # keep the token that crosses the threshold
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        remove = torch.zeros_like(remove).scatter_(-1, sorted_indices, remove)
        logits = logits.masked_fill(remove, torch.finfo(logits.dtype).min)
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.shape[-1]))[0][..., -1, None]
        logits = logits.masked_fill(logits < kth_best, torch.finfo(logits.dtype).min)
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0:
        x0 = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        token_prob = torch.gather(probs, -1, x0[:, None]).squeeze(-1)
    else:
        token_prob, x0 = probs.max(dim=-1)
    if alg == "topk_margin":
        top2 = torch.topk(probs, 2, dim=-1).values
        confidence = top2[:, 0] - top2[:, 1]
    elif alg == "entropy":
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    else:
        confidence = token_prob
    return confidence, x0, token_prob
