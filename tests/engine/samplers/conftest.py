"""Tiny random LLaDA / Dream networks for the sampler tests (vocabulary and mask of sampler_networks)."""

from __future__ import annotations

import pytest
import torch
from sampler_networks import MASK, VOCAB
from torch import nn

from yipyap_jupyter.engine.config import DreamConfig, LLaDAConfig
from yipyap_jupyter.engine.dream import DreamModel
from yipyap_jupyter.engine.llada import LLaDAModel


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
