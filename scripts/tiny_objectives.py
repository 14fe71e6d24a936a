"""Training batches for `tiny`: LLaDA masked diffusion rows and DreamOn expand/delete infill rows.

LLaDA rows follow the pre-training recipe in LLaDA's GUIDELINES.md: a ratio
t ~ U(eps, 1] per row (stratified over the batch), every token masked with probability t, cross-entropy on
the masked tokens weighted 1/t and normalised by the row length.

Infill rows follow DreamOn's `sft_expand_dataset.py` in our own construction:
[BOS] prefix middle' suffix [EOS], where middle' is the true middle with each
token masked with probability r, adjacent masked pairs merged into one mask
slot whose target is `<|expand|>`, and a random number of surplus masks after
the middle whose target is the delete token (EOS). The model thus learns to
ask for more room when a span is too short and to delete slots when it is too
long, which is what the variable-length infill sampler acts on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass(frozen=True)
class SpecialIds:
    eos: int
    mask: int
    expand: int
    bos: int


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), IGNORE where no loss
    weights: torch.Tensor  # (B, L) per-token loss weight (1/t over the row's normaliser), 0 where no loss
    attention_mask: torch.Tensor  # (B, L) bool, True on real tokens


def llada_rows(
    stream: torch.Tensor, n_rows: int, length: int, ids: SpecialIds, gen: torch.Generator, eps: float = 0.05,
    doc_starts: torch.Tensor | None = None, doc_start_share: float = 0.25,
):
    """Random windows of the training stream, masked at a per-row ratio t ~ U(eps, 1].

    A `doc_start_share` of the rows begin at a document's BOS, as a generation canvas
    ([BOS] prompt masks) does, so that shape means "continue the text" to the model
    rather than "an infill whose masks are mostly deleted".

    The rows' ratios are stratified (one per 1/n_rows slice of the interval), and eps is
    0.05 rather than LLaDA's 1e-3: with batches of a dozen rows instead of LLaDA's
    thousands, a single row at t ~ 1e-3 (weight 1/t ~ 1000) would otherwise dominate
    the clipped gradient of its step.
    """
    starts = torch.randint(0, stream.numel() - length, (n_rows,), generator=gen)
    if doc_starts is not None:
        aligned = torch.rand(n_rows, generator=gen) < doc_start_share
        starts = torch.where(aligned, doc_starts[torch.randint(0, doc_starts.numel(), (n_rows,), generator=gen)], starts)
    clean = torch.stack([stream[s : s + length] for s in starts.tolist()])
    u = (torch.rand(1, generator=gen) + torch.arange(n_rows) / n_rows) % 1.0
    t = (1 - eps) * u + eps
    masked = torch.rand(n_rows, length, generator=gen) < t[:, None]
    noisy = torch.where(masked, torch.full_like(clean, ids.mask), clean)
    labels = torch.where(masked, clean, torch.full_like(clean, IGNORE))
    weights = masked.float() / t[:, None] / length
    return noisy, labels, weights, torch.ones_like(noisy, dtype=torch.bool)


def _pick_middle(doc: torch.Tensor, line_end: torch.Tensor, max_middle: int, gen: torch.Generator) -> tuple[int, int]:
    """A middle span [a, b) of `doc`: whole lines half of the time, arbitrary tokens otherwise."""
    n = doc.numel()
    if torch.rand(1, generator=gen).item() < 0.5:
        bounds = (line_end[doc[:-1]].nonzero().flatten() + 1).tolist()
        if len(bounds) >= 2:
            i = int(torch.randint(0, len(bounds) - 1, (1,), generator=gen))
            lines = int(torch.randint(1, 6, (1,), generator=gen))
            j = min(i + lines, len(bounds) - 1)
            a, b = bounds[i], bounds[j]
            if 0 < b - a <= max_middle:
                return a, b
    m = int(torch.randint(1, max_middle + 1, (1,), generator=gen))
    m = min(m, n - 1)
    a = int(torch.randint(0, n - m + 1, (1,), generator=gen))
    return a, a + m


def infill_row(
    doc: torch.Tensor, line_end: torch.Tensor, length: int, ids: SpecialIds, gen: torch.Generator,
    max_middle: int = 64, max_delete: int = 32, no_delete_prob: float = 0.5, whole_middle_prob: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One DreamOn-style row from a tokenised document, padded with EOS (not attended) to `length`.

    `no_delete_prob` of the rows get no surplus masks, so that predicting a delete takes
    evidence from the context rather than habit (a weak model otherwise deletes whole spans).
    `whole_middle_prob` of the rows mask the whole middle, the state every infill starts
    from (at a ratio r ~ U(0, 1) a 20-token middle is wholly masked in 1 row of 21), and the
    merge probability is drawn over [0, 1) so that such a middle comes with anything from
    half its length in slots (every pair merged) to its full length.
    """
    a, b = _pick_middle(doc, line_end, min(max_middle, length - 2), gen)
    middle = doc[a:b]
    whole = torch.rand(1, generator=gen).item() < whole_middle_prob
    r = 1.0 if whole else max(torch.rand(1, generator=gen).item(), 0.05)
    masked = (torch.rand(middle.numel(), generator=gen) < r).tolist()
    merge_p = torch.rand(1, generator=gen).item()
    slots_in: list[int] = []
    slots_label: list[int] = []
    i = 0
    tokens = middle.tolist()
    while i < len(tokens):
        if masked[i] and i + 1 < len(tokens) and masked[i + 1] and torch.rand(1, generator=gen).item() < merge_p:
            slots_in.append(ids.mask)
            slots_label.append(ids.expand)
            i += 2
            continue
        slots_in.append(ids.mask if masked[i] else tokens[i])
        slots_label.append(tokens[i] if masked[i] else IGNORE)
        i += 1
    if no_delete_prob and torch.rand(1, generator=gen).item() < no_delete_prob:
        n_delete = 0
    else:
        most = min(max_delete, middle.numel(), length - 2 - len(slots_in))
        n_delete = int(torch.randint(0, most + 1, (1,), generator=gen))
    slots_in += [ids.mask] * n_delete
    slots_label += [ids.eos] * n_delete

    room = length - 2 - len(slots_in)
    n_prefix = int(torch.randint(0, room + 1, (1,), generator=gen))
    prefix = doc[max(0, a - n_prefix) : a].tolist()
    suffix = doc[b : b + room - len(prefix)].tolist()
    seq = [ids.bos] + prefix + slots_in + suffix + [ids.eos]
    lab = [IGNORE] * (1 + len(prefix)) + slots_label + [IGNORE] * (len(suffix) + 1)
    real = len(seq)
    pad = length - real
    seq += [ids.eos] * pad
    lab += [IGNORE] * pad
    seq_t, lab_t = torch.tensor(seq), torch.tensor(lab)
    weights = (lab_t != IGNORE).float() / r / max(1, len(slots_in))
    attn = torch.arange(length) < real
    return seq_t, lab_t, weights, attn


def make_batch(
    stream: torch.Tensor, docs: list[torch.Tensor], line_end: torch.Tensor, batch_size: int, infill_rows: int,
    length: int, ids: SpecialIds, gen: torch.Generator, no_delete_prob: float = 0.5,
    doc_starts: torch.Tensor | None = None,
) -> Batch:
    """`batch_size - infill_rows` LLaDA rows followed by `infill_rows` DreamOn rows."""
    parts = [llada_rows(stream, batch_size - infill_rows, length, ids, gen, doc_starts=doc_starts)]
    rows = []
    for _ in range(infill_rows):
        doc = docs[int(torch.randint(0, len(docs), (1,), generator=gen))]
        if doc.numel() > length:
            start = int(torch.randint(0, doc.numel() - length + 1, (1,), generator=gen))
            doc = doc[start : start + length]
        rows.append(infill_row(doc, line_end, length, ids, gen, no_delete_prob=no_delete_prob))
    if rows:
        parts.append(tuple(torch.stack(x) for x in zip(*rows)))
    return Batch(*(torch.cat(x) for x in zip(*parts)))


def batch_loss(network: torch.nn.Module, batch: Batch, infill_rows: int, infill_weight: float) -> torch.Tensor:
    """Weighted cross-entropy; LLaDA rows and infill rows averaged separately, then mixed."""
    logits = network(batch.input_ids, attention_mask=batch.attention_mask)
    ce = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), batch.labels.flatten().clamp(min=0), reduction="none"
    ).view_as(batch.weights)
    per_row = (ce * batch.weights).sum(dim=1)
    n_llada = per_row.numel() - infill_rows
    llada = per_row[:n_llada].mean()
    if infill_rows == 0:
        return llada
    return (1 - infill_weight) * llada + infill_weight * per_row[n_llada:].mean()


def _causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def autoregressive_loss(network: torch.nn.Module, stream: torch.Tensor, n_rows: int, length: int,
                        gen: torch.Generator) -> torch.Tensor:
    """Next-token loss with causal attention: the warm-up phase before masked diffusion.

    A bidirectional mask predictor trained from scratch sits near the unigram loss for a
    long time (its positional attention forms slowly); a causal model learns local
    structure within a few hundred steps. Dream and DiffuLLaMA adapt autoregressive
    models into diffusion models for the same reason; this is that recipe in miniature,
    on the same LLaDA network, whose attention is made causal only for these steps.
    """
    from unittest import mock

    import yipyap_jupyter.engine.packing as packing_module

    starts = torch.randint(0, stream.numel() - length - 1, (n_rows,), generator=gen)
    rows = torch.stack([stream[s : s + length + 1] for s in starts.tolist()])
    with mock.patch.object(packing_module, "bidirectional_attention", _causal_attention):
        logits = network(rows[:, :-1])
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), rows[:, 1:].flatten())
