"""A packed pass: every row's logits are its dense pass's logits, to the last bit."""

from __future__ import annotations

import pytest
import torch
from test_networks import NETWORKS, _ids

from yipyap_jupyter.engine.kv_cache import KVCache
from yipyap_jupyter.engine.packing import Packing, Segment
from yipyap_jupyter.engine.samplers.common import logits_for

#: Lengths that put rows' boundaries at every alignment of the CPU kernels' vector loops.
LENGTHS = (13, 40, 57, 21, 90)


def _packed(network: torch.nn.Module, rows: list[torch.Tensor], segments: list[Segment]) -> list[torch.Tensor]:
    packing = Packing(segments)
    with torch.no_grad():
        return packing.split(network(torch.cat([r.reshape(1, -1) for r in rows], dim=1), packing=packing))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("family", NETWORKS)
def test_packed_rows_of_any_length_equal_their_dense_passes(family: str, threads: int) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        network = NETWORKS[family]()
        # the second row has two sequences, as under classifier-free guidance
        rows = [_ids(n, seed=i) if i != 1 else torch.cat([_ids(n, seed=i), _ids(n, seed=9)])
                for i, n in enumerate(LENGTHS)]
        with torch.no_grad():
            dense = [network(row) for row in rows]
        packed = _packed(network, rows, [Segment(r.shape[1], 0, r.shape[0]) for r in rows])
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(p, d) for p, d in zip(packed, dense, strict=True))


@pytest.mark.parametrize("family", NETWORKS)
def test_packed_windows_meet_only_their_own_caches(family: str) -> None:
    network = NETWORKS[family]()
    rows = [_ids(n, seed=i) for i, n in enumerate(LENGTHS)]
    windows = [(0, 13), (8, 24), (20, 57), (5, 21), (60, 90)]
    alone_caches, packed_caches = [KVCache() for _ in rows], [KVCache() for _ in rows]
    alone = []
    for row, cache, (start, end) in zip(rows, alone_caches, windows, strict=True):
        _packed(network, [row], [Segment(row.shape[1], 0, 1, cache)])
        alone += _packed(network, [row[:, start:end]], [Segment(end - start, start, 1, cache)])
    _packed(network, rows, [Segment(r.shape[1], 0, 1, c) for r, c in zip(rows, packed_caches, strict=True)])
    packed = _packed(network, [r[:, s:e] for r, (s, e) in zip(rows, windows, strict=True)],
                     [Segment(e - s, s, 1, c) for (s, e), c in zip(windows, packed_caches, strict=True)])
    assert all(torch.equal(p, a) for p, a in zip(packed, alone, strict=True))


@pytest.mark.parametrize("family", NETWORKS)
def test_logits_at_a_step_s_positions_equal_those_of_the_whole_pass(family: str) -> None:
    network = NETWORKS[family]()
    rows = [_ids(90, seed=1), _ids(57, seed=2)]
    with torch.no_grad():
        whole = [network(row) for row in rows]
    # what steps read: one masked position, a few, a block's worth, none (each widened by logits_for)
    for wanted in ([70], [3, 5, 40], list(range(50, 57)), []):
        reads = [logits_for(torch.tensor([p for p in wanted if p < r.shape[1]], dtype=torch.long), r.shape[1])
                 for r in rows]
        for row, full, (at, read) in zip(rows, whole, reads, strict=True):
            with torch.no_grad():
                dense = network(row, logits_at=at)
            assert torch.equal(dense, full[:, at[0]:at[1]])
            assert torch.equal(dense[:, read], full[:, at[0] + read])
        packed = _packed(network, rows, [Segment(r.shape[1], logits_at=at) for r, (at, _) in zip(rows, reads, strict=True)])
        assert all(torch.equal(p, f[:, a:b]) for p, f, ((a, b), _) in zip(packed, whole, reads, strict=True))
