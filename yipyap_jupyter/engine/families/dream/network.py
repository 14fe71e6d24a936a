"""The Dream network (Dream-v0 and DreamOn-v0), with Qwen2 parameter names.

`model.embed_tokens`, `model.layers.N.{self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj,
input_layernorm, post_attention_layernorm}`, `model.norm`, `lm_head`. Grouped-query,
bidirectional attention. The network returns raw logits: the one-position logit
shift that every Dream sampler applies lives in the samplers. With a `KVCache` the
network can run on a window of the canvas against the other positions' cached keys
and values (Fast-dLLM's block-wise cache), and several requests' windows can share
one pass (`Packing`).
"""

from __future__ import annotations

import torch
from torch import nn

from ...layers import RMSNorm, apply_rotary, silu_, split_heads
from ...packing import Layout, LogitPositions, Packing, through_layers
from .config import DreamConfig


class DreamAttention(nn.Module):
    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.config = config
        kv_dim = config.num_key_value_heads * config.head_dim
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.k_proj = nn.Linear(config.hidden_size, kv_dim, bias=True)
        self.v_proj = nn.Linear(config.hidden_size, kv_dim, bias=True)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        layout: Layout,
        index: int,
    ) -> torch.Tensor:
        cos, sin = rope
        c = self.config
        q = apply_rotary(split_heads(self.q_proj(x), c.num_attention_heads), cos, sin, full_precision=False)
        k = apply_rotary(split_heads(self.k_proj(x), c.num_key_value_heads), cos, sin, full_precision=False)
        v = split_heads(self.v_proj(x), c.num_key_value_heads)
        return self.o_proj(layout.attend(index, q, k, v))


class DreamMLP(nn.Module):
    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, layout: Layout) -> torch.Tensor:
        return self.down_proj(layout.each_row_in_place(silu_, self.gate_proj(x)) * self.up_proj(x))


class DreamLayer(nn.Module):
    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = DreamAttention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = DreamMLP(config)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        layout: Layout,
        index: int,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, layout, index)
        return x + self.mlp(self.post_attention_layernorm(x), layout)


class _DreamBase(nn.Module):
    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DreamLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DreamModel(nn.Module):
    """Dream mask predictor: token ids in, raw (unshifted) logits out."""

    def __init__(self, config: DreamConfig) -> None:
        super().__init__()
        self.config = config
        self.model = _DreamBase(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        packing: Packing | None = None,
        logits_at: LogitPositions | None = None,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab) of `input_ids`, unshifted.

        Args:
            input_ids: (batch, seq) canvases; with `packing`, (1, total): the packed windows.
            attention_mask: (batch, seq) marks real tokens; padding is never attended to.
            position_ids: rotary positions of `input_ids`; default 0, 1, ... (with `packing`, its own).
            packing: the rows packed in `input_ids`, their windows, caches and logit positions (see `Packing`).
            logits_at: without `packing`, the positions to return logits for (default: all).
        """
        x = through_layers(self.model.embed_tokens(input_ids), self.model.layers, input_ids,
                           head_dim=self.config.head_dim, rope_theta=self.config.rope_theta,
                           attention_mask=attention_mask, position_ids=position_ids, packing=packing, logits_at=logits_at)
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
        return nn.functional.linear(x, head)
