"""Network invariants of our LLaDA and Dream modules: bidirectional attention, padding masks, grouped-query heads."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from yipyap_jupyter.engine.families.dream.config import DreamConfig
from yipyap_jupyter.engine.families.dream.network import DreamModel
from yipyap_jupyter.engine.families.llada.config import LLaDAConfig
from yipyap_jupyter.engine.families.llada.network import LLaDAModel

VOCAB = 32
#: MLP widths are not a multiple of the CPU kernels' vector loop (32 floats), so every row's SiLU has a scalar tail


def _llada(kv_heads: int = 4) -> LLaDAModel:
    torch.manual_seed(0)
    config = LLaDAConfig(d_model=32, n_heads=4, n_kv_heads=kv_heads, n_layers=2, mlp_hidden_size=80, vocab_size=VOCAB)
    return LLaDAModel(config).eval()


def _dream(kv_heads: int = 2) -> DreamModel:
    torch.manual_seed(0)
    config = DreamConfig(
        hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=kv_heads, vocab_size=VOCAB,
    )
    return DreamModel(config).eval()


NETWORKS: dict[str, Callable[[], nn.Module]] = {"llada": _llada, "dream": _dream}


def _ids(length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", NETWORKS)
def test_attention_is_not_causal(family: str) -> None:
    network = NETWORKS[family]()
    ids = _ids(10)
    changed = ids.clone()
    changed[0, -1] = (changed[0, -1] + 1) % VOCAB
    with torch.no_grad():
        before, after = network(ids), network(changed)
    assert (before[0, 0] - after[0, 0]).abs().max() > 1e-3  # the first position saw the last token


@pytest.mark.parametrize("family", NETWORKS)
def test_right_padding_under_the_mask_leaves_real_positions_unchanged(family: str) -> None:
    network = NETWORKS[family]()
    ids = _ids(9)
    padded = torch.cat([ids, _ids(5, seed=2)], dim=1)
    mask = torch.tensor([[True] * 9 + [False] * 5])
    with torch.no_grad():
        alone = network(ids)
        masked = network(padded, attention_mask=mask)
        unmasked = network(padded)
    torch.testing.assert_close(masked[:, :9], alone, atol=1e-5, rtol=1e-5)
    assert (unmasked[:, :9] - alone).abs().max() > 1e-3  # without the mask the padding is seen


@pytest.mark.parametrize("family", NETWORKS)
def test_left_padding_with_shifted_positions_matches_a_batch_of_one(family: str) -> None:
    network = NETWORKS[family]()
    ids = _ids(9)
    batch = torch.cat([torch.cat([_ids(3, seed=3), ids], dim=1), _ids(12, seed=4)])
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, :3] = False
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        alone = network(ids)
        both = network(batch, attention_mask=mask, position_ids=positions)
        second = network(batch[1:])
    torch.testing.assert_close(both[0, 3:], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(both[1], second[0], atol=1e-5, rtol=1e-5)


def _widen_kv(grouped: nn.Module, full: nn.Module, q_heads: int, kv_heads: int, head_dim: int) -> None:
    """Copy `grouped` into `full`, giving each query head its own copy of the key/value head it shares."""
    groups = q_heads // kv_heads
    state = grouped.state_dict()
    for name, tensor in state.items():
        if name.endswith(("k_proj.weight", "v_proj.weight", "k_proj.bias", "v_proj.bias")):
            per_head = tensor.reshape(kv_heads, head_dim, *tensor.shape[1:])
            state[name] = per_head.repeat_interleave(groups, dim=0).reshape(q_heads * head_dim, *tensor.shape[1:])
    full.load_state_dict(state)


@pytest.mark.parametrize(("family", "build"), [("llada", _llada), ("dream", _dream)])
def test_grouped_query_attention_equals_attention_with_shared_heads_copied(family: str, build) -> None:
    grouped, full = build(kv_heads=2), build(kv_heads=4)
    _widen_kv(grouped, full, q_heads=4, kv_heads=2, head_dim=8)
    ids = _ids(11)
    with torch.no_grad():
        torch.testing.assert_close(grouped(ids), full(ids), atol=1e-5, rtol=1e-5)
    assert grouped.state_dict()[
        "model.transformer.blocks.0.k_proj.weight" if family == "llada" else "model.layers.0.self_attn.k_proj.weight"
    ].shape == (16, 32)
