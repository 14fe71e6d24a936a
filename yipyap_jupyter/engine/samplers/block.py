"""The block-diffusion sampler of every block family (LLaDA 2.0 / 2.1, SDAR / TraDo).

The canvas is cut into blocks of `block_length` from position 0 and written block by
block. Blocks wholly inside the prompt are never denoised; the block holding the
prompt's end is denoised with the prompt's positions fixed; each later block starts
as masks. A block is denoised step by step, each step one forward pass that predicts
the block (block-causal attention: see `block_cache`) and commits some of its masks by
the family's commit rule; when the block is done, the next one starts. Generation stops
at an end token as the family's official loop does.

`cache="prefix"` keeps the keys/values of committed blocks (exact: a committed block
never changes): each pass runs only the blocks committed since the last pass (stored
as it runs) and the current block, so the prompt's whole blocks are computed once, in
the first pass. `cache="none"` runs the canvas from position 0 to the end of the
current block every step, as the official LLaDA 2.x `generate` does.

Commit rules (small functions below): `threshold` (LLaDA 2.0, SDAR
`low_confidence_dynamic`): every mask more confident than `threshold` when there are at
least as many as the step's share of the schedule, else that share of the most
confident; `static` (SDAR `low_confidence_static`): the share of the most confident;
`sequential` (SDAR): the share, left to right. LLaDA 2.1 adds token editing: a
committed token of the block (not the prompt) is replaced when another token is
predicted there with probability above `editing_threshold`; its masks are committed one
or more per step by the threshold rule, and after the last mask up to `max_post_steps`
steps run while they still edit.

The mask token is never predicted. Greedy (temperature 0) is the argmax, with the
probability at temperature 1 as confidence; otherwise temperature, top-k and top-p shape
one draw per position of the block, as the official samplers draw them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from ...errors import ValidationError
from ..block_cache import BlockCache
from .base import EDITED, MASKED, SETTLED, UNSETTLED, Forward, Program, SamplerStep, make_generator
from .block_options import BLOCK_CACHES, padding
from .common import masked_span

if TYPE_CHECKING:
    from ..model import DiffusionModel
    from ..options import SamplingOptions

#: Commit rules (SDAR's remasking strategies name them otherwise: `families.sdar.sampler`).
RULES = ("threshold", "static", "sequential")


@dataclass(frozen=True)
class Editing:
    """LLaDA 2.1's token editing: its thresholds and the steps allowed after a block's last mask."""

    threshold: float
    max_post_steps: int
    #: masks committed per step at least (the official `num_to_transfer`)
    per_step: int = 1


def transfer_schedule(block_length: int, steps: int) -> list[int]:
    """Masks to commit at each of a block's `steps` steps: `block_length // steps`, the first
    `block_length % steps` steps one more (the official `get_num_transfer_tokens`)."""
    base, remainder = divmod(block_length, steps)
    return [base + 1 if i < remainder else base for i in range(steps)]


def draw(
    logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of `logits` (rows, vocab) and its probability: (tokens, probabilities).

    Temperature 0 is greedy: the most likely token, with its probability at temperature 1.
    Otherwise the logits are divided by the temperature, cut to the `top_k` best and to the
    smallest set whose probability reaches `top_p` (the token that crosses it kept), and a
    token is drawn from what is left, with its probability there.
    """
    if temperature == 0:
        tokens = logits.argmax(dim=-1)
        return tokens, F.softmax(logits, dim=-1).gather(-1, tokens[:, None])[:, 0]
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p is not None and top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        beyond = torch.cumsum(F.softmax(ordered, dim=-1), dim=-1) > top_p
        beyond[..., 1:] = beyond[..., :-1].clone()
        beyond[..., 0] = False
        logits = logits.masked_fill(torch.zeros_like(beyond).scatter(-1, order, beyond), -torch.inf)
    probs = F.softmax(logits, dim=-1)
    tokens = torch.multinomial(probs, num_samples=1, generator=generator)
    return tokens[:, 0], probs.gather(-1, tokens)[:, 0]


def _most_confident(confidence: torch.Tensor, count: int) -> torch.Tensor:
    """A mask of the `count` highest of `confidence` (the block's positions, -inf where nothing may commit)."""
    chosen = torch.zeros_like(confidence, dtype=torch.bool)
    chosen[torch.topk(confidence, count).indices] = True
    return chosen


def commit_threshold(confidence: torch.Tensor, masks: int, count: int, threshold: float) -> torch.Tensor:
    """Every mask more confident than `threshold` if at least `count` are, else the `count` most confident."""
    confident = confidence > threshold
    if int(confident.sum()) >= count:
        return confident
    return _most_confident(confidence, min(count, masks))


def commit_static(confidence: torch.Tensor, masks: int, count: int) -> torch.Tensor:
    """The `count` most confident masks (never more than are left: the official top-k would rewrite others)."""
    return _most_confident(confidence, min(count, masks))


def commit_sequential(masked: torch.Tensor, count: int) -> torch.Tensor:
    """The first `count` masks, left to right."""
    chosen = torch.zeros_like(masked)
    first = int(masked.nonzero()[0])
    chosen[first : first + count] = True
    return chosen & masked


def edits(
    tokens: torch.Tensor, predicted: torch.Tensor, probs: torch.Tensor, editable: torch.Tensor, threshold: float
) -> torch.Tensor:
    """LLaDA 2.1's edits: editable positions whose prediction differs and is more probable than `threshold`."""
    return editable & (probs > threshold) & (predicted != tokens)


@torch.no_grad()
def block_program(
    canvas: torch.Tensor,
    *,
    mask_id: int,
    block_length: int,
    steps: int,
    rule: str = "threshold",
    threshold: float | None = None,
    editing: Editing | None = None,
    stop_ids: frozenset[int] = frozenset(),
    stop_after_block: bool = True,
    stop_mid_block: bool = False,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    cache: str = "prefix",
) -> Program:
    """Generate the masks at the end of `canvas` (1, L) block by block: a program for one row of a `DecodingBatch`.

    Args:
        canvas: the prompt followed by the masks to generate, on the network's device. The canvas is
            extended with masks to a whole number of blocks; what is generated past its end is dropped.
        mask_id: the mask token.
        block_length: positions per block.
        steps: denoising steps per block, read by the schedule of the threshold, static and sequential
            rules; not read under `editing`. (LLaDA 2.0's `generate` first caps it at the tokens to
            generate: its family passes the capped value.)
        rule: "threshold", "static" or "sequential" (see the module's docstring).
        threshold: the threshold rule's confidence (a mask commits when strictly more confident).
        editing: LLaDA 2.1's token editing (the threshold rule commits the masks, `editing.per_step`
            at least per step); None for none.
        stop_ids: the end tokens.
        stop_after_block: stop after a block when an end token stands anywhere in what was generated.
        stop_mid_block: LLaDA 2.0's `eos_early_stop`: stop as soon as a step commits an end token and
            every position before the first end token is decided.
        temperature, top_k, top_p, generator: the draw of each position (see `draw`).
        cache: "prefix" (keep committed blocks' keys/values) or "none" (recompute them every step).

    Each step is one forward pass and yields a `SamplerStep`: `changed` are the positions it
    committed or edited, `confidences` their probabilities; `total_steps` is the most steps the
    run can take.

    Raises:
        ValidationError: bad arguments.
    """
    start, end = masked_span(canvas, mask_id)
    if end != canvas.shape[1]:
        raise ValidationError("the masks to generate must end the canvas")
    _check(block_length, steps, rule, threshold, editing, temperature, top_k, top_p, cache)
    schedule = transfer_schedule(block_length, steps)
    first_block, blocks = start // block_length, -(-end // block_length)
    x = torch.full((1, blocks * block_length), mask_id, dtype=canvas.dtype, device=canvas.device)
    x[:, :end] = canvas
    kv = BlockCache(block_length, x.shape[1], keep=cache == "prefix")
    stops = torch.tensor(sorted(stop_ids), dtype=x.dtype, device=x.device)
    per_block = block_length + editing.max_post_steps if editing is not None else steps
    total_steps = per_block * (blocks - first_block)
    stored = 0  # canvas positions whose keys/values the cache holds for good
    step = 0
    ever_edited = torch.zeros(end, dtype=torch.bool)
    # a greedy step without editing reads only the masks' predictions: the vocabulary head runs on those
    # alone (a sampled step draws at every position of the block, as the official loops do, so its random
    # draws stay theirs)
    masks_only = temperature == 0 and editing is None
    for block in range(first_block, blocks):
        block_start, block_end = block * block_length, (block + 1) * block_length
        editable = torch.arange(block_start, block_end, device=x.device) >= start
        i = post_steps = 0
        while True:
            tokens = x[0, block_start:block_end].clone()
            masked = tokens == mask_id
            masks = int(masked.sum())
            if editing is None and (masks == 0 or i == len(schedule)):
                break
            if editing is not None and masks == 0:
                post_steps += 1
                if post_steps > editing.max_post_steps:
                    break
            window_start = stored if kv.keep else 0
            offset = block_start - window_start
            at = masked.nonzero().flatten() + offset if masks_only else (offset, block_end - window_start)
            logits = yield Forward(x[:, window_start:block_end], window_start, kv, at)
            assert logits is not None
            if kv.keep:
                stored = block_start
            # never the mask token: a trained model gives it no probability, and a committed mask would stay a
            # mask (LLaDA 2.1's loop would never end)
            logits[..., mask_id] = -torch.inf
            predicted, probs = draw(logits[0], temperature, top_k, top_p, generator)
            if masks_only:  # back to the block's positions
                predicted = tokens.masked_scatter(masked, predicted)
                probs = probs.new_zeros(block_length).masked_scatter(masked, probs)
            confidence = torch.where(masked, probs, -torch.inf)
            if masks == 0:
                chosen = masked
            elif editing is not None:
                chosen = commit_threshold(confidence, masks, editing.per_step, threshold or 0.0)
            elif rule == "threshold":
                chosen = commit_threshold(confidence, masks, schedule[i], threshold or 0.0)
            elif rule == "static":
                chosen = commit_static(confidence, masks, schedule[i])
            else:
                chosen = commit_sequential(masked, schedule[i])
            edited = torch.zeros_like(masked)
            if editing is not None:
                edited = edits(tokens, predicted, probs, editable & ~masked, editing.threshold)
                chosen = chosen | edited
            x[0, block_start:block_end] = torch.where(chosen, predicted, tokens)
            i += 1
            step += 1
            positions = chosen.nonzero().flatten()
            inside = positions + block_start < end
            canvas_now = x[0, :end].to("cpu", copy=True)
            states = None
            if editing is not None:
                shown_end = min(block_end, end)
                ever_edited[block_start:shown_end] |= edited[: shown_end - block_start].cpu()
                # the block is done when the loop will not run it again: nothing left to edit, or no steps left
                masks_after = int((x[0, block_start:block_end] == mask_id).sum())
                done = (masks == 0 and not bool(edited.any())) or (
                    masks_after == 0 and post_steps + 1 > editing.max_post_steps)
                open_span = (shown_end, shown_end) if done else (max(start, block_start), shown_end)
                states = _states(canvas_now, mask_id, ever_edited, open_span)
            yield SamplerStep(
                step=step, total_steps=total_steps, canvas=canvas_now,
                changed=(positions[inside] + block_start).cpu(), confidences=probs[positions[inside]].float().cpu(),
                span=(start, end), states=states, blocks_from=0,
            )
            if stop_mid_block and _ended_mid_block(x[0, start:block_end], predicted[chosen], stops, mask_id):
                return
            if editing is not None and masks == 0 and not bool(edited.any()):
                break
        if stop_after_block and bool(torch.isin(x[0, start:block_end], stops).any()):
            return


def _states(canvas: torch.Tensor, mask_id: int, edited: torch.Tensor, current: tuple[int, int]) -> torch.Tensor:
    """Each position's state under token editing: masked; in the current block, open to edits (unsettled);
    in a finished block, edited if it was replaced after its commit, else settled."""
    states = torch.full_like(canvas, SETTLED)
    states[edited] = EDITED
    states[current[0]:current[1]] = UNSETTLED
    states[canvas == mask_id] = MASKED
    return states


def _ended_mid_block(generated: torch.Tensor, committed: torch.Tensor, stops: torch.Tensor, mask_id: int) -> bool:
    """LLaDA 2.0's early stop: this step committed an end token and nothing before the first one is still a mask."""
    if not bool(torch.isin(committed, stops).any()):
        return False
    first = int(torch.isin(generated, stops).nonzero()[0])
    return not bool((generated[:first] == mask_id).any())


def _check(
    block_length: int, steps: int, rule: str, threshold: float | None, editing: Editing | None, temperature: float,
    top_k: int | None, top_p: float | None, cache: str,
) -> None:
    if block_length < 1:
        raise ValidationError(f"block_length must be >= 1, got {block_length}")
    if steps < 1:
        raise ValidationError(f"steps must be >= 1, got {steps}")
    if rule not in RULES:
        raise ValidationError(f"the commit rule must be one of {', '.join(RULES)}, got {rule!r}")
    if (rule == "threshold" or editing is not None) and threshold is None:
        raise ValidationError("the threshold rule needs a threshold")
    if threshold is not None and not 0 <= threshold <= 1:
        raise ValidationError(f"threshold must be in [0, 1], got {threshold}")
    if editing is not None and not 0 <= editing.threshold <= 1:
        raise ValidationError(f"editing_threshold must be in [0, 1], got {editing.threshold}")
    if editing is not None and editing.max_post_steps < 0:
        raise ValidationError(f"max_post_steps must be >= 0, got {editing.max_post_steps}")
    if temperature < 0:
        raise ValidationError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValidationError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValidationError(f"top_p must be in (0, 1], got {top_p}")
    if cache not in BLOCK_CACHES:
        raise ValidationError(f"cache must be one of {', '.join(BLOCK_CACHES)}, got {cache!r}")


def request_canvas(model: DiffusionModel, before: list[int], options: SamplingOptions) -> torch.Tensor:
    """A resolved request's canvas on a loaded model: the prompt `before` and its masks (room left for whole blocks)."""
    masks = [model.ids.mask_id] * options.max_new_tokens
    return model.canvas(before + masks, growth=padding(len(before) + len(masks), options.block_length))


def request_arguments(model: DiffusionModel, options: SamplingOptions) -> dict[str, Any]:
    """The `block_program` arguments every block family takes from a resolved request as they are: the mask,
    the block length, the token draw (temperature, top_k, top_p, a generator seeded by the request) and the cache."""
    return dict(mask_id=model.ids.mask_id, block_length=options.block_length, temperature=options.temperature,
                top_k=options.top_k, top_p=options.top_p, generator=make_generator(options.seed, model.device),
                cache=options.cache)
