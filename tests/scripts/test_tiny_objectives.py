"""The DreamOn-style infill rows that teach `tiny` to expand and delete: every row must describe the true text."""

from __future__ import annotations

import pytest
import torch
from tiny_objectives import IGNORE, SpecialIds, infill_row

IDS = SpecialIds(eos=0, mask=1, expand=2, bos=3)
LENGTH = 96


def _document(n: int = 80) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens 10, 11, 12, ... (so any window of it is a run of consecutive ids), a line break every 5 ids."""
    doc = torch.arange(10, 10 + n)
    line_end = torch.zeros(10 + n, dtype=torch.bool)
    line_end[::5] = True
    return doc, line_end


def _text_of(row: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]) -> list[int | None]:
    """The text a row stands for: visible tokens, masked labels, two unknown tokens per expand, nothing per delete."""
    seq, labels, _, attention = row
    real = int(attention.sum())
    assert seq[0] == IDS.bos and seq[real - 1] == IDS.eos
    text: list[int | None] = []
    for token, label in zip(seq[1 : real - 1].tolist(), labels[1 : real - 1].tolist()):
        if label == IDS.expand:
            text += [None, None]
        elif label == IDS.eos:
            continue
        else:
            text.append(token if label == IGNORE else label)
    return text


@pytest.mark.parametrize("seed", range(40))
def test_infill_row_stands_for_a_window_of_the_document(seed: int) -> None:
    doc, line_end = _document()
    row = infill_row(doc, line_end, LENGTH, IDS, torch.Generator().manual_seed(seed))
    text = _text_of(row)
    assert len({token - i for i, token in enumerate(text) if token is not None}) == 1  # consecutive ids, no gap
    seq, labels, weights, attention = row
    assert seq.shape == labels.shape == weights.shape == attention.shape == (LENGTH,)
    assert torch.equal(weights > 0, labels != IGNORE)
    assert (seq[labels != IGNORE] == IDS.mask).all()
    assert not attention[int(attention.sum()) :].any()


def test_surplus_masks_come_after_the_middle_and_are_deleted() -> None:
    doc, line_end = _document()
    rows = [
        infill_row(doc, line_end, LENGTH, IDS, torch.Generator().manual_seed(seed), no_delete_prob=0.0)
        for seed in range(40)
    ]
    for _, labels, _, _ in rows:
        deletes = (labels == IDS.eos).nonzero().flatten()
        if deletes.numel():
            assert torch.equal(deletes, torch.arange(int(deletes[0]), int(deletes[-1]) + 1))
            assert not (labels[int(deletes[-1]) + 1 :] != IGNORE).any()
    assert sum(int((labels == IDS.eos).sum()) for _, labels, _, _ in rows) > 0


def test_whole_middle_rows_mask_every_slot_with_from_half_to_all_of_its_length() -> None:
    doc, line_end = _document()
    gen = torch.Generator().manual_seed(0)
    ratios = []
    for _ in range(60):
        seq, labels, _, _ = infill_row(doc, line_end, LENGTH, IDS, gen, no_delete_prob=1.0, whole_middle_prob=1.0)
        slots = (labels != IGNORE).nonzero().flatten()
        assert torch.equal(slots, torch.arange(int(slots[0]), int(slots[-1]) + 1))  # one contiguous masked span
        true_length = int((labels == IDS.expand).sum()) * 2 + int(((labels != IGNORE) & (labels != IDS.expand)).sum())
        ratios.append(slots.numel() / true_length)
    assert min(ratios) >= 0.5 and max(ratios) == 1.0
    assert sum(r < 0.75 for r in ratios) >= 5  # spans well short of their text occur, so expanding is learned
