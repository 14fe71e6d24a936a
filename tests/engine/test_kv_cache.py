"""The networks with a `KVCache`: a filling pass is the plain pass, a window pass over unchanged tokens is exact."""

from __future__ import annotations

import pytest
import torch
from test_networks import NETWORKS, _ids

from yipyap_jupyter.engine.kv_cache import KVCache
from yipyap_jupyter.engine.packing import Packing, Segment


def _cached(network, ids: torch.Tensor, cache: KVCache, start: int = 0) -> torch.Tensor:
    """The network's pass over the window `ids` of a canvas from `start`, against `cache`."""
    return network(ids, packing=Packing([Segment(ids.shape[1], start, 1, cache)]))


@pytest.mark.parametrize("family", NETWORKS)
def test_a_full_pass_that_fills_the_cache_equals_the_plain_pass(family: str) -> None:
    network = NETWORKS[family]()
    ids = _ids(10)
    cache = KVCache()
    with torch.no_grad():
        filling, plain = _cached(network, ids, cache), network(ids)
    assert torch.equal(filling, plain)
    layers = len(cache.keys)
    assert layers == len(cache.values) == 2
    kv_heads, head_dim = (4, 8) if family == "llada" else (2, 8)
    assert all(k.shape == (1, kv_heads, 10, head_dim) for k in cache.keys + cache.values)


@pytest.mark.parametrize("family", NETWORKS)
@pytest.mark.parametrize(("start", "end"), [(3, 7), (3, 10), (0, 10)])
def test_a_window_over_unchanged_tokens_gives_the_full_pass_rows(family: str, start: int, end: int) -> None:
    network = NETWORKS[family]()
    ids = _ids(10)
    cache = KVCache()
    with torch.no_grad():
        full = _cached(network, ids, cache)
        window = _cached(network, ids[:, start:end], cache, start)
    torch.testing.assert_close(window, full[:, start:end], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", NETWORKS)
def test_a_window_pass_writes_its_keys_and_values_and_sees_the_rest_cached(family: str) -> None:
    network = NETWORKS[family]()
    ids = _ids(10)
    changed = ids.clone()
    changed[0, 4] = (changed[0, 4] + 1) % 32
    cache = KVCache()
    with torch.no_grad():
        _cached(network, ids, cache)
        before = [k.clone() for k in cache.keys]
        window = _cached(network, changed[:, 3:7], cache, 3)
        exact = network(changed)
    assert all(torch.equal(b[:, :, :3], k[:, :, :3]) and torch.equal(b[:, :, 7:], k[:, :, 7:])
               for b, k in zip(before, cache.keys, strict=True))
    assert not torch.equal(before[0][:, :, 3:7], cache.keys[0][:, :, 3:7])
    # the cached keys of 7.. are stale (computed before the change), so the window only approximates
    assert (window - exact[:, 3:7]).abs().max() > 1e-6


def test_an_empty_cache_is_filled_only_by_a_pass_from_the_start() -> None:
    network = NETWORKS["llada"]()
    with pytest.raises(ValueError, match="full pass"), torch.no_grad():
        _cached(network, _ids(4), KVCache(), 2)
