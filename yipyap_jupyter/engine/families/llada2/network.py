"""The LLaDA 2.x network (`LLaDA2MoeModelLM`, BailingMoeV2 layout), with the official parameter names.

`model.word_embeddings`, `model.layers.N.{input_layernorm, attention.{query_key_value,
query_layernorm, key_layernorm, dense}, post_attention_layernorm, mlp}`, `model.norm`,
`lm_head`. Each layer is pre-norm: `h = x + dense(attention(...))`, `out = h + mlp(norm(h))`.
Attention: one fused query/key/value projection, an RMSNorm over each head's queries and
keys, the rotary embedding on the first `rotary_dim` dimensions of each head (in the
activations' dtype, as the official code), block-causal (see `block_cache`).

The first `first_k_dense_replace` layers have a SwiGLU MLP; the others a mixture of
experts. Its router scores every expert with a sigmoid (in float32); `expert_bias` is added
to the scores only to choose: the experts form `n_group` groups, a group's score is the
sum of its two best, the best `topk_group` groups are kept, and the best
`num_experts_per_tok` experts of those are chosen. Their weights are the chosen sigmoid
scores (without the bias) normalised to sum to one, times `routed_scaling_factor`. Each
expert runs once over the tokens routed to it; the shared experts run over every token.
The routed experts' weights are stored stacked (`LLaDA2Experts`) and read and written
under the official per-expert names.
Logits are returned in float32 (float64 for a float64 network), as the official model returns them.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from ...block_cache import BlockLayout
from ...layers import RMSNorm, apply_rotary, rotary_tables, silu_
from ...packing import LogitPositions, Packing
from .config import LLaDA2Config


class LLaDA2MLP(nn.Module):
    """SwiGLU: `down_proj(silu(gate_proj(x)) * up_proj(x))`, no biases (a dense layer, the shared experts)."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(silu_(self.gate_proj(x)) * self.up_proj(x))


class LLaDA2Gate(nn.Module):
    """The router: which experts each token goes to, and with what weight."""

    def __init__(self, config: LLaDA2Config) -> None:
        super().__init__()
        self.config = config
        experts = cast(int, config.num_experts)
        self.weight = nn.Parameter(torch.empty(experts, config.hidden_size))
        self.expert_bias: torch.Tensor
        self.register_buffer("expert_bias", torch.zeros(experts))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Linear (only a fresh, untrained network reads it)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, hidden) -> chosen experts (tokens, top_k) and their float32 weights (tokens, top_k)."""
        c = self.config
        scores = torch.sigmoid(nn.functional.linear(x.float(), self.weight.float()))
        routing = scores + self.expert_bias
        tokens = routing.shape[0]
        group_scores = routing.view(tokens, c.n_group, -1).topk(2, dim=-1).values.sum(dim=-1)
        best_groups = group_scores.topk(c.topk_group, dim=-1, sorted=False).indices
        kept = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, best_groups, True)
        kept = kept[:, :, None].expand(tokens, c.n_group, routing.shape[1] // c.n_group).reshape(tokens, -1)
        chosen = routing.masked_fill(~kept, -torch.inf).topk(c.num_experts_per_tok, dim=-1).indices
        weights = scores.gather(1, chosen)
        if c.num_experts_per_tok > 1:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return chosen, weights * c.routed_scaling_factor


class LLaDA2Experts(nn.Module):
    """The routed experts' SwiGLU weights, stacked: `gate_up` (experts, hidden, 2 * size), `down` (experts, size, hidden).

    Stored as the right-hand side of `tokens @ weight`, with each expert's gate and up
    projections side by side in one product: a block step routes a few tokens to each
    expert, and such small products run faster on the CPU this way than against `nn.Linear`'s
    transposed weights, one projection at a time. The checkpoint's names for expert N,
    `N.gate_proj.weight`, `N.up_proj.weight` (size, hidden) and `N.down_proj.weight`
    (hidden, size), are read by `from_official` and written by `to_official` (see
    `engine.checkpoint.weights`).
    """

    def __init__(self, experts: int, hidden_size: int, size: int) -> None:
        super().__init__()
        self.size = size
        self.gate_up = nn.Parameter(torch.empty(experts, hidden_size, 2 * size))
        self.down = nn.Parameter(torch.empty(experts, size, hidden_size))
        # as each expert's nn.Linear draws them (only a fresh, untrained network reads them)
        nn.init.uniform_(self.gate_up, -hidden_size**-0.5, hidden_size**-0.5)
        nn.init.uniform_(self.down, -size**-0.5, size**-0.5)

    def forward(self, inputs: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Each expert over its rows of `inputs` (tokens grouped by expert, `counts[n]` rows for expert n)."""
        outputs = torch.empty_like(inputs)
        begin = 0
        for expert, count in enumerate(counts):
            if count:
                rows = slice(begin, begin + count)
                gate, up = (inputs[rows] @ self.gate_up[expert]).split(self.size, dim=-1)
                outputs[rows] = (nn.functional.silu(gate) * up) @ self.down[expert]
                begin += count
        return outputs

    def to_official(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        """Replace this module's stacked tensors in `state` by each expert's, under the official names (views)."""
        gate_up, down = state.pop(prefix + "gate_up"), state.pop(prefix + "down")
        for expert in range(gate_up.shape[0]):
            state[f"{prefix}{expert}.gate_proj.weight"] = gate_up[expert, :, : self.size].T
            state[f"{prefix}{expert}.up_proj.weight"] = gate_up[expert, :, self.size :].T
            state[f"{prefix}{expert}.down_proj.weight"] = down[expert].T

    def from_official(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        """Replace each expert's official tensors in `state` by the stacked ones, freeing them one by one."""
        experts, hidden, _ = self.gate_up.shape
        first = state[f"{prefix}0.gate_proj.weight"]
        gate_up = first.new_empty(experts, hidden, 2 * self.size)
        down = first.new_empty(experts, self.size, hidden)
        for expert in range(experts):
            gate_up[expert, :, : self.size] = state.pop(f"{prefix}{expert}.gate_proj.weight").T
            gate_up[expert, :, self.size :] = state.pop(f"{prefix}{expert}.up_proj.weight").T
            down[expert] = state.pop(f"{prefix}{expert}.down_proj.weight").T
        state[prefix + "gate_up"], state[prefix + "down"] = gate_up, down


class LLaDA2MoE(nn.Module):
    """Routed experts plus shared experts; each expert computed over its own tokens only."""

    def __init__(self, config: LLaDA2Config) -> None:
        super().__init__()
        size = cast(int, config.moe_intermediate_size)
        self.experts = LLaDA2Experts(cast(int, config.num_experts), config.hidden_size, size)
        self.gate = LLaDA2Gate(config)
        # as the official block: shared experts unless the config says null, of zero width for 0 (their
        # checkpoint then holds empty tensors)
        shared = config.num_shared_experts
        self.shared_experts = LLaDA2MLP(config.hidden_size, size * shared) if shared is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        chosen, weights = self.gate(flat)
        top_k = chosen.shape[1]
        routes = chosen.flatten()
        order = routes.argsort(stable=True)  # (token, slot) pairs grouped by expert
        counts = torch.bincount(routes, minlength=self.experts.gate_up.shape[0]).tolist()
        outputs = self.experts(flat[order // top_k], counts)
        routed = torch.empty_like(outputs)
        routed[order] = outputs
        # the official sum: slot by slot, in the weights' float32, then back to the activations' dtype
        y = (routed.view(-1, top_k, x.shape[-1]).float() * weights[..., None]).sum(dim=1).to(x.dtype).view_as(x)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        return y


class LLaDA2Attention(nn.Module):
    def __init__(self, config: LLaDA2Config) -> None:
        super().__init__()
        self.config = config
        head = config.head_size
        self.query_key_value = nn.Linear(
            config.hidden_size, (config.num_attention_heads + 2 * config.kv_heads) * head, bias=config.use_qkv_bias)
        if config.use_qk_norm:
            self.query_layernorm = RMSNorm(head, config.rms_norm_eps)
            self.key_layernorm = RMSNorm(head, config.rms_norm_eps)
        self.dense = nn.Linear(config.num_attention_heads * head, config.hidden_size, bias=config.use_bias)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], layout: BlockLayout, index: int
    ) -> torch.Tensor:
        c = self.config
        batch, seq, _ = x.shape
        qkv = self.query_key_value(x).view(batch, seq, c.num_attention_heads + 2 * c.kv_heads, c.head_size)
        q, k, v = (t.transpose(1, 2) for t in qkv.split([c.num_attention_heads, c.kv_heads, c.kv_heads], dim=2))
        if c.use_qk_norm:
            q, k = self.query_layernorm(q), self.key_layernorm(k)
        q, k = _rotate_leading(q, rope, c.rotary_dim), _rotate_leading(k, rope, c.rotary_dim)
        return self.dense(layout.attend(index, q, k, v))


def _rotate_leading(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], dims: int) -> torch.Tensor:
    """The rotary embedding on the first `dims` dimensions of each head; the rest pass through."""
    cos, sin = rope
    rotated = apply_rotary(x[..., :dims], cos, sin, full_precision=False)
    return torch.cat([rotated, x[..., dims:]], dim=-1)


class LLaDA2Layer(nn.Module):
    def __init__(self, config: LLaDA2Config, index: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attention = LLaDA2Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp: nn.Module = (
            LLaDA2MoE(config) if config.is_moe_layer(index)
            else LLaDA2MLP(config.hidden_size, cast(int, config.intermediate_size))
        )

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], layout: BlockLayout, index: int
    ) -> torch.Tensor:
        x = x + self.attention(self.input_layernorm(x), rope, layout, index)
        return x + self.mlp(self.post_attention_layernorm(x))


class _LLaDA2Body(nn.Module):
    def __init__(self, config: LLaDA2Config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LLaDA2Layer(config, index) for index in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class LLaDA2Model(nn.Module):
    """LLaDA 2.x mask predictor: token ids in, float32 logits out (each position predicts itself)."""

    def __init__(self, config: LLaDA2Config) -> None:
        super().__init__()
        self.config = config
        self.model = _LLaDA2Body(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        packing: Packing | None = None,
        logits_at: LogitPositions | None = None,
        block_length: int | None = None,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab) of `input_ids`.

        Args:
            input_ids: (batch, seq) canvases from position 0; with `packing`, (1, total): the packed windows.
            position_ids: rotary positions (default 0, 1, ...; with `packing`, each window's own).
            packing: rows packed in `input_ids`, each with a `BlockCache` (see `block_cache`).
            logits_at: without `packing`, the positions to return logits for (default: all).
            block_length: without `packing`, the blocks of the block-causal mask (None: bidirectional).
        """
        layout = BlockLayout(input_ids, packing, block_length, logits_at)
        x = self.model.word_embeddings(input_ids)
        if position_ids is None:
            position_ids = layout.positions(input_ids)
        cos, sin = rotary_tables(position_ids, self.config.rotary_dim, self.config.rope_theta, layout.each_row_in_place)
        rope = (cos.to(x.dtype), sin.to(x.dtype))
        for index, layer in enumerate(self.model.layers):
            x = layer(x, rope, layout, index)
        x = self.model.norm(layout.logit_positions(x))
        head = self.model.word_embeddings.weight if self.config.tie_word_embeddings else self.lm_head.weight
        logits = nn.functional.linear(x, head)
        return logits.to(torch.promote_types(logits.dtype, torch.float32))  # float32, or float64 for a float64 network
