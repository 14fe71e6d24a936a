"""LLaDA's masked-diffusion sampler (semi-autoregressive blocks, low-confidence remasking).

Follows `generate()` of the LLaDA paper's code: the masked span is cut into
blocks filled left to right; each block gets `steps / num_blocks` steps and a
linear schedule of how many tokens to commit per step; each step predicts every
masked position at once (Gumbel-max at `temperature`, in float64) and commits
the most confident predictions inside the current block. Committed tokens are
never remasked. The span may be followed by a suffix (fixed-length infilling);
the suffix is never changed.

Fast-dLLM's speed-ups (arXiv 2505.22618) are options of the same loop: a
confidence `threshold` (commit every prediction at least that sure) and a
block-wise key/value `cache` ("prefix" or "dual", see `kv_cache`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ....errors import ValidationError
from ...kv_cache import KVCache
from ...samplers.base import Forward, Program, SamplerStep, make_generator
from ...samplers.common import CACHES, logits_for, masked_span, select_positions, window_of

if TYPE_CHECKING:
    from ...model import DiffusionModel
    from ...options import SamplingOptions


REMASKING = ("low_confidence", "random")


def num_transfer_tokens(mask_count: int, steps: int) -> list[int]:
    """Tokens to commit at each of `steps` steps: the linear schedule, `mask_count // steps`
    per step with the first `mask_count % steps` steps taking one more."""
    base, remainder = divmod(mask_count, steps)
    return [base + 1 if i < remainder else base for i in range(steps)]


def choose_transfers(
    row_logits: torch.Tensor,
    rows: torch.Tensor,
    window: int,
    *,
    temperature: float,
    remasking: str,
    generator: torch.Generator | None,
    count: int | None,
    threshold: float | None,
    float64: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick what one step commits from the predictions `row_logits` (rows, vocab) for `rows`.

    `rows` are the positions (ascending, counted in a window of `window` positions: what the
    network ran on) that may be committed, the current block's masks; only they are
    predicted (Gumbel-max at `temperature`) and scored. The noise is drawn for the whole
    window, as LLaDA draws it, so a seed samples what it always sampled. Commits the `count`
    best-ranked rows, or with `threshold` every row at least that confident and always the
    best one (Fast-dLLM's `get_transfer_index`). `float64` measures probabilities in float64
    as Fast-dLLM does (LLaDA's own loop uses the logits' dtype).

    Returns:
        (positions in the window, ascending; their tokens; their probabilities).
    """
    device = row_logits.device
    x0 = None
    if temperature > 0:
        shape = (1, window, row_logits.shape[-1])
        noise = torch.rand(shape, dtype=torch.float64, device=device, generator=generator)[0, rows]
        x0 = (row_logits.to(torch.float64).exp() / (-torch.log(noise)) ** temperature).max(-1).indices
    elif not float64:
        x0 = row_logits.max(-1).indices  # max, not argmax: the same first index, several times faster on CPU
    probs = F.softmax(row_logits, dim=-1, dtype=torch.float64 if float64 else None)  # the cast fused in
    if x0 is None:
        # in float64 the most probable token is exactly the logits' argmax (float32 could round two together)
        x0_p, x0 = probs.max(-1)
    else:
        x0_p = probs.gather(-1, x0[:, None]).squeeze(-1)
    if remasking == "low_confidence":
        rank = x0_p
    else:
        rank = torch.rand((1, window), device=device, generator=generator)[0, rows]
    chosen = select_positions(rank, rows, window, count=count or 0, threshold=threshold)
    picked = torch.searchsorted(rows, chosen)
    return chosen, x0[picked], x0_p[picked]


@torch.no_grad()
def llada_program(
    canvas: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    block_length: int,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    generator: torch.Generator | None = None,
    threshold: float | None = None,
    cache: str = "none",
) -> Program:
    """The program that denoises the masked span of `canvas` (1, L) in `steps` steps, one row of a batch.

    Its passes ask the mask predictor for the logits of a window (`Forward`); the batch that
    runs it (`DecodingBatch`, or `run_alone` for one program) calls the network.

    Args:
        canvas: prompt + masks, or prefix + masks + suffix, on the network's device; the masks
            are one contiguous run.
        mask_id: the mask token.
        steps: total steps, shared evenly by the blocks.
        block_length: the span is filled block by block, left to right; the span length
            must be a multiple of it.
        temperature: Gumbel-max sampling temperature; 0 is greedy.
        cfg_scale: classifier-free guidance; the unconditional pass masks every position
            that was not a mask in `canvas`.
        remasking: which predictions to commit first, "low_confidence" (most probable) or "random".
        generator: source of all randomness (noise and random remasking).
        threshold: confidence-aware parallel decoding (Fast-dLLM, arXiv 2505.22618): instead of
            the linear schedule, each step commits every masked position of the block whose
            confidence is at least `threshold`, and always the most confident one; a block
            takes as many steps as it needs, so `steps` is ignored and `total_steps` is an
            upper bound (one token per step).
        cache: "none" runs the whole canvas every step (LLaDA's loop). "prefix" and "dual" are
            Fast-dLLM's block-wise caches: each block's first step runs the whole canvas and
            fills a `KVCache`; its later steps run the block and everything right of it
            ("prefix") or the block alone ("dual") against the cached keys/values. Both are
            approximations (stale keys/values within a block) and, like Fast-dLLM's loops, end
            a block as soon as it has no masks.

    With a cache or a threshold the loop is Fast-dLLM's (`generate`, `generate_with_prefix_cache`,
    `generate_with_dual_cache`), probabilities in float64 as there: the same tokens and the same
    forward passes, one per step, including the pass that commits nothing which its cached loops
    run when a block's first (full) pass already fills the block. Without either it is LLaDA's
    `generate`, probabilities in the logits' dtype.

    Yields:
        One `SamplerStep` per step (one forward pass); `confidences` are the probabilities of
        the committed tokens.

    Raises:
        ValidationError: bad arguments, including a span length not divisible by `block_length`
            or `steps` not divisible by the number of blocks (when the program starts).
    """
    start, end = masked_span(canvas, mask_id)
    gen_length = end - start
    if steps < 1:
        raise ValidationError(f"steps must be >= 1, got {steps}")
    if block_length < 1 or gen_length % block_length != 0:
        raise ValidationError(
            f"the masked span ({gen_length} tokens) must be a whole number of blocks; "
            f"block_length {block_length} does not divide it"
        )
    num_blocks = gen_length // block_length
    if steps % num_blocks != 0:
        raise ValidationError(f"steps ({steps}) must be divisible by the number of blocks ({num_blocks})")
    if temperature < 0:
        raise ValidationError(f"temperature must be >= 0, got {temperature}")
    if cfg_scale < 0:
        raise ValidationError(f"cfg_scale must be >= 0, got {cfg_scale}")
    if threshold is not None and not 0 < threshold <= 1:
        raise ValidationError(f"threshold must be in (0, 1], got {threshold}")
    if remasking not in REMASKING:
        raise ValidationError(f"remasking must be one of {', '.join(REMASKING)}, got {remasking!r}")
    if cache not in CACHES:
        raise ValidationError(f"cache must be one of {', '.join(CACHES)}, got {cache!r}")
    steps_per_block = steps // num_blocks
    fast_dllm = cache != "none" or threshold is not None

    x = canvas.clone()
    prompt_index = x != mask_id
    step = 0
    for num_block in range(num_blocks):
        block_start = start + num_block * block_length
        block_end = block_start + block_length
        block_mask_count = int((x[0, block_start:block_end] == mask_id).sum())
        schedule = num_transfer_tokens(block_mask_count, steps_per_block)
        kv_cache = None if cache == "none" else KVCache()
        for i in range(steps_per_block if threshold is None else block_mask_count + 1):
            rows = (x[0, block_start:block_end] == mask_id).nonzero().flatten() + block_start
            # Fast-dLLM's cached loops check for masks after a block's second pass, not before it:
            # when the first (full) pass fills the block, one more pass runs and commits nothing
            idle = kv_cache is not None and i == 1
            if fast_dllm and rows.numel() == 0 and not idle:
                break
            step += 1
            window_start, window_end = window_of(cache, i, x.shape[1], block_start, block_end)
            batch = x
            if cfg_scale > 0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                batch = torch.cat([x, un_x])
            rows_in_window = rows - window_start
            at, read = logits_for(rows_in_window, window_end - window_start)
            logits = yield Forward(batch[:, window_start:window_end], window_start, kv_cache, at)
            assert logits is not None
            logits = logits[:, read]  # only the rows this step may commit
            if cfg_scale > 0:
                cond_logits, un_logits = logits.chunk(2, dim=0)
                logits = un_logits + (cfg_scale + 1) * (cond_logits - un_logits)

            if rows.numel() == 0:
                changed, tokens, confidences = rows, rows, torch.zeros(0)
            else:
                changed, tokens, confidences = choose_transfers(
                    logits[0], rows_in_window, window_end - window_start, temperature=temperature,
                    remasking=remasking, generator=generator, count=None if threshold is not None else schedule[i],
                    threshold=threshold, float64=fast_dllm,
                )
                changed = changed + window_start
            x[0, changed] = tokens
            yield SamplerStep(
                step=step,
                total_steps=steps if threshold is None else gen_length,
                canvas=x[0].to("cpu", copy=True),
                changed=changed.cpu(),
                confidences=confidences.float().cpu(),
                span=(start, end),
            )


def model_program(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions) -> Program:
    """The program of a resolved request on a loaded model: `before` + masks + `after` denoised."""
    canvas = model.canvas(before + [model.ids.mask_id] * options.max_new_tokens + after)
    return llada_program(
        canvas, mask_id=model.ids.mask_id, steps=options.steps, block_length=options.block_length,
        temperature=options.temperature, cfg_scale=options.cfg_scale, remasking=options.remasking,
        threshold=options.threshold, cache=options.cache, generator=make_generator(options.seed, model.device),
    )
