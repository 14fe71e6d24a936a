"""Dream's (Qwen2-layout) `config.json`, typed: the fields that shape the network, under their official names."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ....errors import ModelLoadingError
from ...checkpoint.checks import check_config, known_fields


@dataclass
class DreamConfig:
    """The fields of Dream's (Qwen2-layout) `config.json` that shape the network."""

    hidden_size: int = 3584
    intermediate_size: int = 18944
    num_hidden_layers: int = 28
    num_attention_heads: int = 28
    num_key_value_heads: int = 4
    vocab_size: int = 152064
    rope_theta: float = 1_000_000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    hidden_act: str = "silu"
    max_position_embeddings: int = 131072
    mask_token_id: int = 151666
    pad_token_id: int = 151643
    bos_token_id: int = 151665
    eos_token_id: int = 151643
    model_type: str = "Dream"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DreamConfig:
        config = cls(**known_fields(cls, raw))
        check_config(config)
        if config.hidden_act != "silu":
            raise ModelLoadingError(f"unsupported Dream config setting: hidden_act={config.hidden_act}")
        if raw.get("rope_scaling"):
            raise ModelLoadingError("unsupported Dream config setting: rope_scaling")
        return config

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
