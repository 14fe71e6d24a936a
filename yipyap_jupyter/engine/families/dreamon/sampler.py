"""DreamOn's variable-length infilling: masks may grow (`<|expand|>`) or vanish (the delete token).

The canvas is [BOS] + prefix + n masks + suffix + [EOS]. Each step predicts
every mask (Dream's token draw and position ranking) and commits the
`number_transfer_tokens` most confident predictions. A committed delete token
removes its position; a committed expand token becomes two masks in its place.
So the middle shrinks and grows until no mask is left, never beyond
`max_new_tokens` tokens and never with more than `expand_budget` expansions:
the expand token is blocked once the canvas is at its maximum length or the
budget is spent.

As in DreamOn, the network always sees the canvas padded to its maximum
length, with an attention mask over the current window and position ids
counting inside it; the same shapes give the same logits as the reference to
the last bit, so greedy runs reproduce it token for token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ....cancel import CancelToken
from ....errors import ValidationError
from ...samplers.base import SamplerStep, make_generator
from ...samplers.common import DREAM_ALGS, check_token_shaping, masked_span, network_device, sample_tokens, shifted_rows

if TYPE_CHECKING:
    from ...model import DiffusionModel
    from ...options import SamplingOptions

#: The variable-length middle starts as `max_new_tokens // START_DIVISOR` masks (a quarter).
START_DIVISOR = 4



@torch.no_grad()
def variable_infill(
    network: nn.Module,
    canvas: torch.Tensor,
    *,
    mask_id: int,
    delete_id: int,
    expand_id: int,
    max_new_tokens: int,
    alg: str = "entropy",
    temperature: float = 0.2,
    top_p: float | None = 0.9,
    top_k: int | None = None,
    alg_temp: float = 0.0,
    number_transfer_tokens: int = 1,
    expand_budget: int | None = None,
    shift_logits: bool = True,
    generator: torch.Generator | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[SamplerStep]:
    """Fill the masked middle of `canvas` (1, L), letting its length change, yielding each step.

    Args:
        network: mask predictor, `network(ids) -> logits` (batch, seq, vocab).
        canvas: [BOS] + prefix + masks + suffix + [EOS]; the masks are one contiguous run.
        mask_id, delete_id, expand_id: the mask, delete (DreamOn: EOS) and `<|expand|>` tokens.
        max_new_tokens: the most tokens the middle may hold (at least the initial masks).
        alg: position ranking, "maskgit_plus", "topk_margin" or "entropy".
        temperature, top_p, top_k: shape the token draw; temperature 0 is greedy.
        alg_temp: 0 commits the most confident positions; > 0 samples them.
        number_transfer_tokens: predictions committed per step.
        expand_budget: most expansions allowed; None means DreamOn's default,
            twice the room from the first mask to the maximum length.
        shift_logits: read position i's prediction from output i - 1 (Dream-architecture
            models); False for LLaDA-architecture models.
        generator: source of all randomness.
        cancel: checked before every step.

    Yields:
        One `SamplerStep` per step. `canvas` is the window after the step's edits, `changed`
        the positions (in that canvas) of committed ordinary tokens, `span` the middle's
        current (start, end); `total_steps` is DreamOn's upper bound on steps.

    Raises:
        ValidationError: bad arguments.
        GenerationCancelled: `cancel` was set.
    """
    start, end = masked_span(canvas, mask_id)
    if alg not in DREAM_ALGS:
        raise ValidationError(f"alg must be one of {', '.join(DREAM_ALGS)}, got {alg!r}")
    if len({mask_id, delete_id, expand_id}) != 3:
        raise ValidationError("mask_id, delete_id and expand_id must be three different tokens")
    if max_new_tokens < end - start:
        raise ValidationError(
            f"max_new_tokens ({max_new_tokens}) must be at least the number of masks ({end - start})"
        )
    if number_transfer_tokens < 1:
        raise ValidationError(f"number_transfer_tokens must be >= 1, got {number_transfer_tokens}")
    if expand_budget is not None and expand_budget < 0:
        raise ValidationError(f"expand_budget must be >= 0, got {expand_budget}")
    if alg_temp is not None and alg_temp < 0:
        raise ValidationError(f"alg_temp must be >= 0, got {alg_temp}")
    check_token_shaping(temperature, top_p, top_k)

    max_length = canvas.shape[1] - (end - start) + max_new_tokens
    max_gen_len = max_length - start
    if expand_budget is None:
        expand_budget = 2 * max_gen_len
    total_steps = 2 * max_gen_len + 2 * expand_budget

    x = canvas[0].to(network_device(network, canvas.device)).clone()
    slots = torch.arange(max_length, device=x.device)[None]
    for step in range(1, total_steps + 1):
        mask_index = x == mask_id
        if not mask_index.any():
            return
        if cancel is not None:
            cancel.raise_if_cancelled(step)

        window = x.numel()
        padded = torch.cat([x, x.new_full((max_length - window,), delete_id)])[None]
        attention_mask = slots < window
        position_ids = torch.where(attention_mask, slots, 1)
        logits = network(padded, attention_mask=attention_mask, position_ids=position_ids)[0]
        mask_positions = mask_index.nonzero().flatten()
        mask_logits = logits[shifted_rows(mask_positions) if shift_logits else mask_positions]
        if window == max_length or expand_budget == 0:
            mask_logits[:, expand_id] -= 1e9

        confidence, x0, token_prob = sample_tokens(
            mask_logits, alg=alg, temperature=temperature, top_p=top_p, top_k=top_k, generator=generator
        )
        k = min(number_transfer_tokens, confidence.numel())
        if not alg_temp:
            _, transfer_index = torch.topk(confidence, k)
        else:
            transfer_index = torch.multinomial(F.softmax(confidence / alg_temp, dim=-1), k, generator=generator)
        transfer_index = transfer_index.sort().values
        positions = mask_positions[transfer_index]
        tokens, token_prob = x0[transfer_index], token_prob[transfer_index]

        # Several expansions in one step must still fit max_length and the budget;
        # the leftmost ones that fit are applied, the rest stay masks.
        deletes = tokens == delete_id
        expands = tokens == expand_id
        room = min(max_length - (window - int(deletes.sum())), expand_budget)
        ordinary = ~deletes & ~expands
        expands &= expands.cumsum(0) <= room
        x[positions[ordinary]] = tokens[ordinary]

        counts = torch.ones_like(x)
        counts[positions[deletes]] = 0
        counts[positions[expands]] = 2
        new_index = counts.cumsum(0) - counts
        x = x.repeat_interleave(counts)
        end += int(expands.sum()) - int(deletes.sum())
        expand_budget -= int(expands.sum())

        yield SamplerStep(
            step=step,
            total_steps=total_steps,
            canvas=x.to("cpu", copy=True),
            changed=new_index[positions[ordinary]].cpu(),
            confidences=token_prob[ordinary].float().cpu(),
            span=(start, end),
        )


def model_steps(model: DiffusionModel, before: list[int], after: list[int], options: SamplingOptions,
                cancel: CancelToken | None) -> Iterator[SamplerStep]:
    """The steps of a resolved request on a loaded model: the middle between `before` and `after` grown or shrunk.

    The middle starts as `max_new_tokens // START_DIVISOR` masks (at least one) and may grow
    to `max_new_tokens`; DreamOn's input ends with its delete token.
    """
    if model.ids.expand is None:
        raise ValidationError(f"model {model.spec.id} cannot infill variable-length: its tokenizer has no"
                              f" {model.spec.tokens.expand or 'expand'} token")
    n = options.max_new_tokens
    start = max(1, n // START_DIVISOR)
    canvas = model.canvas(before + [model.ids.mask_id] * start + after + [model.ids.eos], growth=n - start)
    return variable_infill(
        model.network, canvas, mask_id=model.ids.mask_id, delete_id=model.ids.eos, expand_id=model.ids.expand,
        max_new_tokens=n, alg=options.alg, temperature=options.temperature, top_p=options.top_p, top_k=options.top_k,
        alg_temp=options.alg_temp, shift_logits=model.spec.shift_logits,
        generator=make_generator(options.seed, model.device), cancel=cancel,
    )
