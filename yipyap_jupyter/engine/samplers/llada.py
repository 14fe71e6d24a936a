"""LLaDA's masked-diffusion sampler (semi-autoregressive blocks, low-confidence remasking).

Follows `generate()` of the LLaDA paper's code: the masked span is cut into
blocks filled left to right; each block gets `steps / num_blocks` steps and a
linear schedule of how many tokens to commit per step; each step predicts every
masked position at once (Gumbel-max at `temperature`, in float64) and commits
the most confident predictions inside the current block. Committed tokens are
never remasked. The span may be followed by a suffix (fixed-length infilling);
the suffix is never changed.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ValidationError
from ...cancel import CancelToken
from .base import SamplerStep
from .common import masked_span, network_device

REMASKING = ("low_confidence", "random")


def num_transfer_tokens(mask_count: int, steps: int) -> list[int]:
    """Tokens to commit at each of `steps` steps: the linear schedule, `mask_count // steps`
    per step with the first `mask_count % steps` steps taking one more."""
    base, remainder = divmod(mask_count, steps)
    return [base + 1 if i < remainder else base for i in range(steps)]


def add_gumbel_noise(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Scores whose argmax is a sample from softmax(logits / temperature) (Gumbel-max).

    Done in float64: low-precision Gumbel noise lowers generation quality
    (arXiv:2409.02908). Temperature 0 returns the logits unchanged (greedy).
    """
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    noise = torch.rand(logits.shape, dtype=torch.float64, device=logits.device, generator=generator)
    gumbel_noise = (-torch.log(noise)) ** temperature
    return logits.exp() / gumbel_noise


@torch.no_grad()
def llada_sample(
    network: nn.Module,
    canvas: torch.Tensor,
    *,
    mask_id: int,
    steps: int,
    block_length: int,
    temperature: float = 0.0,
    cfg_scale: float = 0.0,
    remasking: str = "low_confidence",
    generator: torch.Generator | None = None,
    cancel: CancelToken | None = None,
    logits_eos_inf: bool = False,
    confidence_eos_eot_inf: bool = False,
    eos_id: int | None = None,
    eot_id: int | None = None,
    threshold: float | None = None,
) -> Iterator[SamplerStep]:
    """Denoise the masked span of `canvas` (1, L) in `steps` steps, yielding each step.

    Args:
        network: mask predictor, `network(ids) -> logits` (batch, seq, vocab).
        canvas: prompt + masks, or prefix + masks + suffix; the masks are one contiguous run.
        mask_id: the mask token.
        steps: total steps, shared evenly by the blocks.
        block_length: the span is filled block by block, left to right; the span length
            must be a multiple of it.
        temperature: Gumbel-max sampling temperature; 0 is greedy.
        cfg_scale: classifier-free guidance; the unconditional pass masks every position
            that was not a mask in `canvas`.
        remasking: which predictions to commit first, "low_confidence" (most probable) or "random".
        generator: source of all randomness (noise and random remasking).
        cancel: checked before every step.
        logits_eos_inf: never predict `eos_id` (LLaDA paper, appendix B.4).
        confidence_eos_eot_inf: rank positions whose prediction is `eos_id` / `eot_id` last, so
            end-of-text fills in only after the text before it (appendix B.4).
        eos_id, eot_id: the end-of-sequence and end-of-turn tokens these options refer to.
        threshold: confidence-aware parallel decoding (Fast-dLLM, arXiv 2505.22618): instead of
            the linear schedule, each step commits every masked position of the block whose
            confidence is at least `threshold`, and always the most confident one; a block
            takes as many steps as it needs, so `steps` is ignored and `total_steps` is an
            upper bound (one token per step).

    Yields:
        One `SamplerStep` per step; `confidences` are the probabilities of the committed tokens.

    Raises:
        ValidationError: bad arguments, including a span length not divisible by `block_length`
            or `steps` not divisible by the number of blocks.
        GenerationCancelled: `cancel` was set.
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
    if logits_eos_inf and eos_id is None:
        raise ValidationError("logits_eos_inf needs eos_id")
    end_ids = [i for i in (eos_id, eot_id) if i is not None]
    if confidence_eos_eot_inf and not end_ids:
        raise ValidationError("confidence_eos_eot_inf needs eos_id or eot_id")
    steps_per_block = steps // num_blocks

    x = canvas.to(network_device(network, canvas.device)).clone()
    prompt_index = x != mask_id
    step = 0
    for num_block in range(num_blocks):
        block_end = start + (num_block + 1) * block_length
        block_mask_count = int((x[0, block_end - block_length : block_end] == mask_id).sum())
        schedule = num_transfer_tokens(block_mask_count, steps_per_block)
        for i in range(steps_per_block if threshold is None else block_mask_count):
            if threshold is not None and not (x[0, block_end - block_length : block_end] == mask_id).any():
                break
            step += 1
            if cancel is not None:
                cancel.raise_if_cancelled(step)
            mask_index = x == mask_id
            if cfg_scale > 0:
                un_x = x.clone()
                un_x[prompt_index] = mask_id
                cond_logits, un_logits = network(torch.cat([x, un_x])).chunk(2, dim=0)
                logits = un_logits + (cfg_scale + 1) * (cond_logits - un_logits)
            else:
                logits = network(x)
            if logits_eos_inf:
                logits[:, :, eos_id] = -torch.inf

            logits_with_noise = add_gumbel_noise(logits, temperature, generator)
            x0 = torch.argmax(logits_with_noise, dim=-1)

            if confidence_eos_eot_inf:
                # the chosen token's probability is measured without end tokens: a position
                # whose best guess is EOS / EoT gets confidence 0 and is committed last
                logits = logits.clone()
                logits[:, :, end_ids] = -torch.inf
            p = F.softmax(logits, dim=-1)
            x0_p = torch.gather(p, dim=-1, index=x0[..., None]).squeeze(-1)
            if remasking == "low_confidence":
                rank = x0_p.clone()
            else:
                rank = torch.rand(x0.shape, device=x0.device, generator=generator)
            rank[:, block_end:] = -torch.inf

            x0 = torch.where(mask_index, x0, x)
            confidence = torch.where(mask_index, rank, -torch.inf)
            if threshold is None:
                _, select_index = torch.topk(confidence[0], k=schedule[i])
            else:
                ranked, select_index = torch.sort(confidence[0], descending=True)
                keep = ranked >= threshold
                keep[0] = True
                select_index = select_index[keep & (ranked > -torch.inf)]
            x[0, select_index] = x0[0, select_index]

            changed = select_index.sort().values
            yield SamplerStep(
                step=step,
                total_steps=steps if threshold is None else gen_length,
                canvas=x[0].to("cpu", copy=True),
                changed=changed.cpu(),
                confidences=x0_p[0, changed].float().cpu(),
                span=(start, end),
            )
