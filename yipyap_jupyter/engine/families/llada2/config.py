"""The fields of LLaDA 2.x's `config.json` (`model_type` "llada2_moe"), with the official names and defaults.

Defaults are those of the official `LLaDA2MoeConfig`; the released checkpoints set every
field that matters (LLaDA2.0-mini: hidden 2048, 20 layers, 16 heads, 4 key/value heads,
head_dim 128, 256 experts, 8 per token, groups 8 / 4, one shared expert, the first
layer dense, half the head rotated, rope_theta 600000).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ....errors import ModelLoadingError

#: Fields whose null in config.json the official network reads as "none", not as the default.
_NULL_MEANS_NONE = frozenset({"num_experts", "num_shared_experts"})


@dataclass
class LLaDA2Config:
    """What shapes the LLaDA 2.x network (BailingMoeV2 layout)."""

    vocab_size: int = 30592
    hidden_size: int = 1024
    intermediate_size: int | None = None
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int = 0
    head_dim: int | None = None
    hidden_act: str = "silu"
    use_qkv_bias: bool = False
    use_qk_norm: bool = True
    use_bias: bool = True
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 16384
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 0.5
    num_experts: int | None = 16
    num_shared_experts: int | None = 0
    num_experts_per_tok: int = 2
    n_group: int = 8
    topk_group: int = 4
    routed_scaling_factor: float = 2.5
    moe_intermediate_size: int | None = None
    first_k_dense_replace: int = 0
    pad_token_id: int | None = None
    eos_token_id: int | None = None
    mask_token_id: int | None = None
    model_type: str = "llada2_moe"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LLaDA2Config:
        names = {f.name for f in fields(cls)}
        # null means the default, except where the official code reads null as "none": no experts (every
        # layer dense), no shared experts
        config = cls(**{k: v for k, v in raw.items() if k in names and (v is not None or k in _NULL_MEANS_NONE)})
        problems = config._problems()
        if raw.get("rope_scaling"):
            problems.append("rope_scaling is not supported")
        if problems:
            raise ModelLoadingError(f"config.json does not fit the LLaDA2 (llada2_moe) schema: {'; '.join(problems)}")
        return config

    def _problems(self) -> list[str]:
        problems = []
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_experts_per_tok",
                     "n_group", "topk_group", "head_dim", "intermediate_size", "moe_intermediate_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                problems.append(f"{name} must be an integer of at least 1, not {value!r}")
        for name in ("num_key_value_heads", "first_k_dense_replace", "num_experts", "num_shared_experts"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                problems.append(f"{name} must be a non-negative integer, not {value!r}")
        for name in ("rms_norm_eps", "rope_theta", "routed_scaling_factor", "partial_rotary_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive finite number, not {value!r}")
        if self.hidden_act != "silu":
            problems.append(f"hidden_act {self.hidden_act!r} is not supported (only silu)")
        for name in ("pad_token_id", "eos_token_id", "mask_token_id"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and 0 <= value < self.vocab_size):
                problems.append(f"{name} {value!r} is outside the vocabulary (0..{self.vocab_size - 1})")
        if problems:
            return problems
        if self.num_attention_heads % self.kv_heads:
            problems.append(f"num_key_value_heads {self.kv_heads} does not divide num_attention_heads")
        if self.rotary_dim < 2 or self.rotary_dim % 2 or self.rotary_dim > self.head_size:
            problems.append(f"partial_rotary_factor {self.partial_rotary_factor} gives no even rotary width")
        if self.moe_layers and (not self.num_experts or not self.moe_intermediate_size):
            problems.append("MoE layers need num_experts and moe_intermediate_size")
        if self.moe_layers and self.num_experts and (
            self.num_experts % self.n_group or not self.topk_group <= self.n_group
            or self.num_experts_per_tok > self.num_experts // self.n_group * self.topk_group
            or self.num_experts // self.n_group < 2
        ):
            problems.append("num_experts, n_group, topk_group and num_experts_per_tok do not make groups to choose from")
        if self.first_k_dense_replace and not self.intermediate_size:
            problems.append("dense layers (first_k_dense_replace) need intermediate_size")
        return problems

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def rotary_dim(self) -> int:
        """How many leading dimensions of each head are rotated (the official `int(head_dim * factor)`)."""
        return int(self.head_size * self.partial_rotary_factor)

    @property
    def moe_layers(self) -> bool:
        return bool(self.num_experts) and self.first_k_dense_replace < self.num_hidden_layers

    def is_moe_layer(self, index: int) -> bool:
        return bool(self.num_experts) and index >= self.first_k_dense_replace

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
