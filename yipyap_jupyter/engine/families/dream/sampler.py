"""Dream's sampler: `diffusion_generate` over the whole span, or Fast-dLLM's block-wise variant.

Whole span (`block_length=None`): time runs from 1 down to `eps` in `steps`
equal steps. `origin` commits each masked position with probability 1 - s/t;
the other algorithms commit the int(masks * (1 - s/t)) positions they are most
confident about (all remaining masks on the last step), ranked by top
probability, top1 - top2 margin, or negative entropy, optionally sampled with
`alg_temp`.

Blocks (Fast-dLLM's `generation_utils_block.py`): the span is filled block by
block; each block's first step runs the whole canvas and commits only the
block's first token, later steps follow the same schedule inside the block (or,
with a `threshold`, commit every prediction at least that sure), optionally
against a block-wise key/value `cache`.

Dream was trained from an autoregressive model, so the prediction for position
i is read from the network's output at i - 1 (the first position of what the
network ran on keeps its own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ....errors import ValidationError
from ...kv_cache import KVCache
from ...samplers.base import Forward, Program, SamplerStep, make_generator
from ...samplers.common import (
    CACHES,
    DREAM_ALGS,
    TokenShaping,
    check_token_shaping,
    logits_for,
    masked_span,
    sample_tokens,
    select_positions,
    shifted_rows,
    window_of,
)

if TYPE_CHECKING:
    from ...model import DiffusionModel
    from ...options import SamplingOptions


ALGS = ("origin", *DREAM_ALGS)
#: What Dream's official `diffusion_generate` runs with under transformers 4: the generation
#: config it builds from the model config carries the legacy default top_k=50.
DEFAULT_TOP_K = 50


@torch.no_grad()
def dream_program(
    canvas: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    alg: str = "maskgit_plus",
    alg_temp: float = 0.0,
    temperature: float = 0.0,
    top_p: float | None = None,
    top_k: int | None = DEFAULT_TOP_K,
    eps: float = 1e-3,
    block_length: int | None = None,
    cache: str = "none",
    threshold: float | None = None,
    generator: torch.Generator | None = None,
) -> Program:
    """The program that denoises the masked span of `canvas` (1, L) in `steps` steps, one row of a batch.

    Its passes ask Dream's mask predictor (unshifted logits) for the logits of a window
    (`Forward`); the batch that runs it (`DecodingBatch`, or `run_alone` for one program)
    calls the network.

    Args:
        canvas: prompt + masks, or prefix + masks + suffix, on the network's device; the masks
            are one contiguous run.
        mask_id: the mask token.
        steps: number of steps (with blocks: shared evenly by them, at least two each);
            every mask is filled by the last one.
        alg: "origin", "maskgit_plus", "topk_margin" or "entropy" (with blocks, not "origin").
            Fast-dLLM's block sampler ranks by negative entropy whatever its `alg`, so
            `alg="entropy"` is the one that reproduces it.
        alg_temp: 0 commits the most confident positions; > 0 samples them from
            softmax(confidence / alg_temp).
        temperature, top_p, top_k: shape the token draw; temperature 0 is greedy. top_k
            defaults to 50, what the official `diffusion_generate` effectively uses.
        eps: the final time of the schedule linspace(1, eps, steps + 1) (per block with blocks).
        block_length: None samples the whole span at once (Dream's `diffusion_generate`); a
            length that divides the span runs Fast-dLLM's block sampler.
        cache: with blocks, "none" runs the whole canvas every step; "prefix" / "dual" run a
            block's later steps on the block plus everything right of it / on the block alone,
            against keys/values cached at its first step (Fast-dLLM's approximation).
        threshold: with blocks, confidence-aware parallel decoding (Fast-dLLM's
            `alg="confidence_threshold"`): each step commits every masked position of the block
            whose top probability is at least `threshold`, and always the most probable one; a
            block takes as many steps as it needs, `steps`, `alg` and `alg_temp` are not used
            and `total_steps` is an upper bound.
        generator: source of all randomness.

    Yields:
        One `SamplerStep` per step (one forward pass); `confidences` are the probabilities of
        the committed tokens.

    Raises:
        ValidationError: bad arguments (when the program starts).
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
    if cache not in CACHES:
        raise ValidationError(f"cache must be one of {', '.join(CACHES)}, got {cache!r}")
    if threshold is not None and not 0 < threshold <= 1:
        raise ValidationError(f"threshold must be in (0, 1], got {threshold}")
    check_token_shaping(temperature, top_p, top_k)
    shaping: TokenShaping = {"temperature": temperature, "top_p": top_p, "top_k": top_k, "generator": generator}

    x = canvas.clone()
    if block_length is None:
        if cache != "none" or threshold is not None:
            raise ValidationError("cache and threshold need block_length (Fast-dLLM's block sampler)")
        yield from _whole_span(x, (start, end), mask_id, steps, alg, alg_temp, eps, shaping)
        return
    gen_length = end - start
    if block_length < 1 or gen_length % block_length != 0:
        raise ValidationError(
            f"the masked span ({gen_length} tokens) must be a whole number of blocks; "
            f"block_length {block_length} does not divide it"
        )
    num_blocks = gen_length // block_length
    if threshold is None and (steps % num_blocks != 0 or steps // num_blocks < 2):
        raise ValidationError(
            f"steps ({steps}) must be a multiple of the number of blocks ({num_blocks}), at least two per block"
        )
    if alg == "origin":
        raise ValidationError("the block sampler ranks positions; alg 'origin' is for the whole-span sampler")

    steps_per_block = steps // num_blocks
    timesteps = torch.linspace(1, eps, steps_per_block + 1, device=x.device)
    step = 0
    for num_block in range(num_blocks):
        block_start = start + num_block * block_length
        block_end = block_start + block_length
        kv_cache = None if cache == "none" else KVCache()
        for i in range(steps_per_block if threshold is None else block_length):
            rows = (x[0, block_start:block_end] == mask_id).nonzero().flatten() + block_start
            if rows.numel() == 0:
                break
            step += 1
            window_start, window_end = window_of(cache, i, x.shape[1], block_start, block_end)
            if i == 0:
                # Fast-dLLM: a block's first (full) pass commits only the block's first token
                rows = rows[:1]
            rows_in_window, window = rows - window_start, window_end - window_start
            at, read = logits_for(shifted_rows(rows, window_start), window)
            logits = yield Forward(x[:, window_start:window_end], window_start, kv_cache, at)
            assert logits is not None
            row_logits = logits[0, read]
            if i == 0:
                _, x0, token_prob = sample_tokens(row_logits, alg="maskgit_plus", **shaping)
                chosen = rows_in_window
            elif threshold is not None:
                confidence, x0, token_prob = sample_tokens(row_logits, alg="maskgit_plus", **shaping)
                chosen = select_positions(confidence, rows_in_window, window, threshold=threshold)
            else:
                confidence, x0, token_prob = sample_tokens(row_logits, alg=alg, **shaping)
                t, s = timesteps[i], timesteps[i + 1]
                count = int(rows.numel() * (1 - s / t)) if i < steps_per_block - 1 else rows.numel()
                chosen = select_positions(confidence, rows_in_window, window, count=count, alg_temp=alg_temp,
                                          generator=generator)
            picked = torch.searchsorted(rows_in_window, chosen)
            changed = chosen + window_start
            x[0, changed] = x0[picked]
            yield SamplerStep(
                step=step,
                total_steps=steps if threshold is None else gen_length,
                canvas=x[0].to("cpu", copy=True),
                changed=changed.cpu(),
                confidences=token_prob[picked].float().cpu(),
                span=(start, end),
            )


def _whole_span(
    x: torch.Tensor,
    span: tuple[int, int],
    mask_id: int,
    steps: int,
    alg: str,
    alg_temp: float,
    eps: float,
    shaping: TokenShaping,
) -> Program:
    """Dream's `diffusion_generate`: every step predicts every mask of the canvas."""
    timesteps = torch.linspace(1, eps, steps + 1, device=x.device)
    for i in range(steps):
        mask_positions = (x[0] == mask_id).nonzero().flatten()
        at, read = logits_for(shifted_rows(mask_positions), x.shape[1])
        logits = yield Forward(x, logits_at=at)
        assert logits is not None
        mask_logits = logits[0, read]
        t, s = timesteps[i], timesteps[i + 1]

        if alg == "origin":
            p_transfer = 1 - s / t if i < steps - 1 else 1
            transfer = torch.rand(mask_positions.shape, device=x.device, generator=shaping["generator"]) < p_transfer
            changed = mask_positions[transfer]
            _, x0, token_prob = sample_tokens(mask_logits[transfer], alg=alg, **shaping)
        else:
            confidence, x0, token_prob = sample_tokens(mask_logits, alg=alg, **shaping)
            num_mask_token = mask_positions.numel()
            count = int(num_mask_token * (1 - s / t)) if i < steps - 1 else num_mask_token
            changed = select_positions(confidence, mask_positions, x.shape[1], count=count, alg_temp=alg_temp,
                                       generator=shaping["generator"])
            # x0 / token_prob follow the order of the masked positions; pick the committed ones
            picked = torch.searchsorted(mask_positions, changed)
            x0, token_prob = x0[picked], token_prob[picked]
        x[0, changed] = x0

        yield SamplerStep(
            step=i + 1,
            total_steps=steps,
            canvas=x[0].to("cpu", copy=True),
            changed=changed.cpu(),
            confidences=token_prob.float().cpu(),
            span=span,
        )


def model_program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    """The program of a resolved request on a loaded model: `before` + masks + `after` denoised.

    A run of one block without a cache or threshold is Dream's whole-span `diffusion_generate`.
    """
    canvas = model.canvas(before + [model.ids.mask_id] * options.max_new_tokens + after)
    whole_span = options.block_length == options.max_new_tokens and options.cache == "none" and options.threshold is None
    return dream_program(
        canvas, mask_id=model.ids.mask_id, steps=options.steps, alg=options.alg, alg_temp=options.alg_temp,
        temperature=options.temperature, top_p=options.top_p, top_k=options.top_k,
        block_length=None if whole_span else options.block_length, cache=options.cache, threshold=options.threshold,
        generator=make_generator(options.seed, model.device),
    )
