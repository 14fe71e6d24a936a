"""Tiny random LLaDA / Dream networks for the sampler tests (vocabulary and mask of sampler_networks).

The `sure_*` networks run in float64 and are scaled so their predictions vary along the
canvas and are often confident enough for a threshold to commit several at once; with
two layers the block-wise caches change their output (the approximation is real), and
comparisons with the restated reference loops never hinge on rounding.
"""

from __future__ import annotations

import pytest
import torch
from sampler_networks import MASK, VOCAB
from torch import nn

from yipyap_jupyter.engine.families.dream.config import DreamConfig
from yipyap_jupyter.engine.families.dream.network import DreamModel
from yipyap_jupyter.engine.families.llada.config import LLaDAConfig
from yipyap_jupyter.engine.families.llada.network import LLaDAModel


def _never_predicts_mask(network: nn.Module) -> nn.Module:
    """Like a trained model, which gives the mask token no probability, so sampled runs end without masks."""

    def lower_mask_logit(module: nn.Module, args: tuple, logits: torch.Tensor) -> torch.Tensor:
        logits[..., MASK] = -1e4
        return logits

    network.register_forward_hook(lower_mask_logit)
    return network


@pytest.fixture(scope="module")
def tiny_llada() -> LLaDAModel:
    torch.manual_seed(0)
    config = LLaDAConfig(d_model=32, n_heads=4, n_layers=2, mlp_hidden_size=64, vocab_size=VOCAB, mask_token_id=MASK)
    return _never_predicts_mask(LLaDAModel(config).eval())


@pytest.fixture(scope="module")
def tiny_dream() -> DreamModel:
    torch.manual_seed(0)
    config = DreamConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=VOCAB, mask_token_id=MASK,
    )
    return _never_predicts_mask(DreamModel(config).eval())


def _sure(network: nn.Module, embedding: nn.Embedding, attentions: list[nn.Module], head: nn.Linear) -> nn.Module:
    """Quieter embeddings, sharper attention and a sharper head: varied, often confident predictions."""
    with torch.no_grad():
        embedding.weight.mul_(0.1)
        for attention in attentions:
            attention.q_proj.weight.mul_(4.0)
            attention.k_proj.weight.mul_(4.0)
        head.weight.mul_(6.0)
    return _never_predicts_mask(network.double().eval())


def _sure_llada(layers: int) -> LLaDAModel:
    torch.manual_seed(0)
    config = LLaDAConfig(d_model=32, n_heads=4, n_layers=layers, mlp_hidden_size=64, vocab_size=VOCAB, mask_token_id=MASK)
    network = LLaDAModel(config)
    t = network.model.transformer
    return _sure(network, t["wte"], list(t["blocks"]), t["ff_out"])


def _sure_dream(layers: int) -> DreamModel:
    torch.manual_seed(0)
    config = DreamConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=VOCAB, mask_token_id=MASK,
    )
    network = DreamModel(config)
    return _sure(network, network.model.embed_tokens, [layer.self_attn for layer in network.model.layers], network.lm_head)


@pytest.fixture(scope="module")
def sure_llada() -> LLaDAModel:
    return _sure_llada(layers=2)


@pytest.fixture(scope="module")
def sure_dream() -> DreamModel:
    return _sure_dream(layers=2)


@pytest.fixture(scope="module")
def one_layer_llada() -> LLaDAModel:
    """With one layer the cached keys/values are exact: they depend only on tokens that a block does not change."""
    return _sure_llada(layers=1)


@pytest.fixture(scope="module")
def one_layer_dream() -> DreamModel:
    return _sure_dream(layers=1)
