"""The LLaDA network, with the official checkpoint's parameter names.

`model.transformer.{wte, blocks.N.*, ln_f, ff_out}`: the module tree below
mirrors those names, so the official safetensors load with a plain
`load_state_dict`. Each block is pre-norm, Llama-style:
`h = x + attn_out(attention(attn_norm(x)))`, `out = h + ff_out(silu(ff_proj(m)) * up_proj(m))`
with `m = ff_norm(h)`. Attention is bidirectional. With a `KVCache` the network
can run on a window of the canvas against the other positions' cached keys and
values (Fast-dLLM's block-wise cache), and several requests' windows can share one
pass (`Packing`).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from ...layers import RMSNorm, apply_rotary, silu_, split_heads
from ...packing import Layout, LogitPositions, Packing, through_layers
from .config import LLaDAConfig


class LLaDABlock(nn.Module):
    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        self.config = config
        head_dim = config.d_model // config.n_heads
        qkv_bias = config.include_bias or config.include_qkv_bias
        self.attn_norm = RMSNorm(config.d_model, config.rms_norm_eps)
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=qkv_bias)
        self.k_proj = nn.Linear(config.d_model, config.kv_heads * head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(config.d_model, config.kv_heads * head_dim, bias=qkv_bias)
        self.attn_out = nn.Linear(config.d_model, config.d_model, bias=config.include_bias)
        self.ff_norm = RMSNorm(config.d_model, config.rms_norm_eps)
        self.ff_proj = nn.Linear(config.d_model, config.hidden_size, bias=config.include_bias)
        self.up_proj = nn.Linear(config.d_model, config.hidden_size, bias=config.include_bias)
        self.ff_out = nn.Linear(config.hidden_size, config.d_model, bias=config.include_bias)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        layout: Layout,
        index: int,
    ) -> torch.Tensor:
        cos, sin = rope
        normed = self.attn_norm(x)
        q = apply_rotary(split_heads(self.q_proj(normed), self.config.n_heads), cos, sin, full_precision=True)
        k = apply_rotary(split_heads(self.k_proj(normed), self.config.kv_heads), cos, sin, full_precision=True)
        v = split_heads(self.v_proj(normed), self.config.kv_heads)
        x = x + self.attn_out(layout.attend(index, q, k, v))
        m = self.ff_norm(x)
        return x + self.ff_out(layout.each_row_in_place(silu_, self.ff_proj(m)) * self.up_proj(m))


class _LLaDATransformer(nn.Module):
    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        self.transformer = nn.ModuleDict(
            {
                "wte": nn.Embedding(config.padded_vocab, config.d_model),
                "blocks": nn.ModuleList(LLaDABlock(config) for _ in range(config.n_layers)),
                "ln_f": RMSNorm(config.d_model, config.rms_norm_eps),
            }
        )
        if not config.weight_tying:
            self.transformer["ff_out"] = nn.Linear(config.d_model, config.padded_vocab, bias=config.include_bias)


class LLaDAModel(nn.Module):
    """LLaDA mask predictor: token ids in, raw logits over the (padded) vocabulary out."""

    def __init__(self, config: LLaDAConfig) -> None:
        super().__init__()
        self.config = config
        self.model = _LLaDATransformer(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        packing: Packing | None = None,
        logits_at: LogitPositions | None = None,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab) of `input_ids`.

        Args:
            input_ids: (batch, seq) canvases; with `packing`, (1, total): the packed windows.
            attention_mask: (batch, seq) marks real tokens; padding is never attended to.
            position_ids: rotary positions of `input_ids`; default 0, 1, ... (with `packing`, its own).
            packing: the rows packed in `input_ids`, their windows, caches and logit positions (see `Packing`).
            logits_at: without `packing`, the positions to return logits for (default: all).
        """
        t = self.model.transformer
        x = t["wte"](input_ids)
        if self.config.input_emb_norm:
            x = x * (self.config.d_model**0.5)
        x = through_layers(x, cast(nn.ModuleList, t["blocks"]), input_ids,
                           head_dim=self.config.d_model // self.config.n_heads, rope_theta=self.config.rope_theta,
                           attention_mask=attention_mask, position_ids=position_ids, packing=packing, logits_at=logits_at)
        x = t["ln_f"](x)
        bias: torch.Tensor | None = None
        if self.config.weight_tying:
            head = cast(nn.Embedding, t["wte"]).weight
        else:
            ff_out = cast(nn.Linear, t["ff_out"])
            head, bias = ff_out.weight, ff_out.bias
        logits = nn.functional.linear(x, head, bias)
        if self.config.scale_logits:
            logits = logits * (1 / math.sqrt(self.config.d_model))
        return logits
