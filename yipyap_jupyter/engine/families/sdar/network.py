"""The SDAR network (`SDARForCausalLM`, also TraDo): transformers' Qwen3 layers, attending block-causally.

SDAR checkpoints are Qwen3-shaped and Qwen3-named (`model.embed_tokens`,
`model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm,
post_attention_layernorm, mlp.{gate,up,down}_proj}`, `model.norm`, `lm_head`); only the
attention differs: block-causal instead of causal. So the layers are transformers' own
`Qwen3DecoderLayer`s, with their attention function replaced (through transformers'
attention-function registry) by the block-causal one of `block_cache`, which also reads
and writes the row's `BlockCache`. The rotary tables are computed as Qwen3 computes them,
once per pass. Logits come back in the weights' dtype, as the official model returns them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface, Qwen3Config
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer, Qwen3RMSNorm

from ....errors import ModelLoadingError
from ...block_cache import BlockLayout
from ...checkpoint.checks import check_config
from ...layers import rotary_tables
from ...packing import LogitPositions, Packing

#: The name our attention function is registered under in transformers' attention registry.
ATTENTION = "yipyap_block_causal"


def _block_causal_attention(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: (batch, heads, seq, head_dim) in, (batch, seq, heads, head_dim) out."""
    layout: BlockLayout = kwargs["block_layout"]
    batch, heads, seq, head_dim = query.shape
    layer: int = module.layer_idx  # type: ignore[assignment]  # Qwen3Attention's plain int attribute
    return layout.attend(layer, query, key, value).view(batch, seq, heads, head_dim), None


AttentionInterface.register(ATTENTION, _block_causal_attention)


@dataclass
class SDARConfig:
    """The fields of SDAR's `config.json` that shape the network (Qwen3's, plus `block_size` and `mask_token_id`)."""

    vocab_size: int = 151936
    hidden_size: int = 4096
    intermediate_size: int = 22016
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int = 32
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    attention_bias: bool = False
    tie_word_embeddings: bool = False
    use_sliding_window: bool = False
    block_size: int = 4
    mask_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    model_type: str = "sdar"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SDARConfig:
        names = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in raw.items() if k in names and v is not None and not isinstance(v, list)})
        check_config(config)
        unsupported = [name for name, ok in (("hidden_act", config.hidden_act == "silu"),
                                             ("use_sliding_window", not config.use_sliding_window),
                                             ("rope_scaling", not raw.get("rope_scaling")),
                                             ("num_experts", not raw.get("num_experts"))) if not ok]
        if unsupported:
            raise ModelLoadingError(f"unsupported SDAR config settings: {', '.join(unsupported)}")
        return config

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    def qwen3(self) -> Qwen3Config:
        """The same network as transformers' Qwen3 config, attending through our block-causal function."""
        config = Qwen3Config(  # type: ignore[call-arg]  # rope_theta: read into rope_parameters
            vocab_size=self.vocab_size, hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers, num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads, head_dim=self.head_size, hidden_act=self.hidden_act,
            max_position_embeddings=self.max_position_embeddings, rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta, attention_bias=self.attention_bias,
            tie_word_embeddings=self.tie_word_embeddings, use_sliding_window=False,
        )
        config._attn_implementation = ATTENTION
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _SDARBody(nn.Module):
    def __init__(self, config: Qwen3Config) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Qwen3DecoderLayer(config, index) for index in range(config.num_hidden_layers))
        self.norm = Qwen3RMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class SDARModel(nn.Module):
    """SDAR mask predictor: token ids in, logits out (each position predicts itself)."""

    def __init__(self, config: SDARConfig) -> None:
        super().__init__()
        self.config = config
        self.model = _SDARBody(config.qwen3())
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
        """Logits (batch, seq, vocab) of `input_ids`; the arguments are those of `LLaDA2Model.forward`."""
        layout = BlockLayout(input_ids, packing, block_length, logits_at)
        x = self.model.embed_tokens(input_ids)
        if position_ids is None:
            position_ids = layout.positions(input_ids)
        cos, sin = rotary_tables(position_ids, self.config.head_size, self.config.rope_theta, layout.each_row_in_place)
        rope = (cos[:, 0].to(x.dtype), sin[:, 0].to(x.dtype))  # Qwen3 adds the heads' axis itself
        for layer in self.model.layers:
            x = layer(x, position_embeddings=rope, block_layout=layout)
        x = self.model.norm(layout.logit_positions(x))
        head = self.model.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
        return nn.functional.linear(x, head)
