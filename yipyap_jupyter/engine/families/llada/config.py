"""LLaDA's `config.json`, typed: the fields that shape the network, under their official names."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ....errors import ModelLoadingError
from ...checkpoint.checks import check_config, known_fields


@dataclass
class LLaDAConfig:
    """The fields of LLaDA's `config.json` that shape the network."""

    d_model: int = 4096
    n_heads: int = 32
    n_kv_heads: int | None = None
    n_layers: int = 32
    mlp_hidden_size: int | None = None
    mlp_ratio: int = 4
    vocab_size: int = 126464
    embedding_size: int | None = None
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    weight_tying: bool = False
    include_bias: bool = False
    include_qkv_bias: bool = False
    scale_logits: bool = False
    input_emb_norm: bool = False
    rope: bool = True
    alibi: bool = False
    attention_layer_norm: bool = False
    block_type: str = "llama"
    layer_norm_type: str = "rms"
    activation_type: str = "silu"
    max_sequence_length: int = 4096
    mask_token_id: int = 126336
    eos_token_id: int = 126081
    pad_token_id: int = 126081
    model_type: str = "llada"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LLaDAConfig:
        config = cls(**known_fields(cls, raw))
        check_config(config)
        unsupported = [
            name
            for name, ok in (
                ("rope", config.rope),
                ("alibi", not config.alibi),
                ("attention_layer_norm", not config.attention_layer_norm),
                ("block_type", config.block_type == "llama"),
                ("layer_norm_type", config.layer_norm_type in ("rms", "default_rms")),
                ("activation_type", config.activation_type in ("silu", "swiglu")),
            )
            if not ok
        ]
        if unsupported:
            raise ModelLoadingError(f"unsupported LLaDA config settings: {', '.join(unsupported)}")
        return config

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def hidden_size(self) -> int:
        return self.mlp_hidden_size or self.mlp_ratio * self.d_model

    @property
    def padded_vocab(self) -> int:
        return self.embedding_size or self.vocab_size

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
