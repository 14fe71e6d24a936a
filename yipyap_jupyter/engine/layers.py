"""Building blocks shared by the LLaDA and Dream networks.

Both architectures are pre-norm transformers with RMSNorm, rotary position
embeddings, SwiGLU feed-forward and *bidirectional* attention; they differ in
parameter names, biases and grouped-query attention, which the network modules
own. Numerics follow the official code: normalisation and rotary tables in
float32, cast back to the activation dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

# `enable_gqa` (torch >= 2.5) shares key/value heads without copying them per query head
_SDPA_GROUPS_HEADS = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5)


class RMSNorm(nn.Module):
    """RMS normalisation computed in float32, cast back, then scaled by `weight`."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


#: Applies an in-place element-wise function to a (batch, seq, ...) tensor and returns it; row by row
#: for a packed pass (see `packing`).
EachRowInPlace = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor], torch.Tensor]


def silu_(x: torch.Tensor) -> torch.Tensor:
    """SiLU in place (the tensor is the fresh output of a projection)."""
    return F.silu(x, inplace=True)


def rotary_tables(
    position_ids: torch.Tensor, head_dim: int, theta: float, each_row_in_place: EachRowInPlace
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine and sine tables, float32, shaped (batch, 1, seq, head_dim) for NeoX-style rotation."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim))
    freqs = position_ids.float()[..., None] * inv_freq  # (batch, seq, head_dim/2)
    angles = torch.cat((freqs, freqs), dim=-1)
    cos = each_row_in_place(torch.Tensor.cos_, angles.clone())
    return cos[:, None], each_row_in_place(torch.Tensor.sin_, angles)[:, None]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, *, full_precision: bool
) -> torch.Tensor:
    """Rotate `x` (batch, heads, seq, head_dim); in float32 when `full_precision` (LLaDA), else in x's dtype (Dream)."""
    if full_precision:
        x32 = x.float()
        return (x32 * cos + _rotate_half(x32) * sin).to(x.dtype)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_half(x) * sin


def bidirectional_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> torch.Tensor:
    """Full (non-causal) attention; `key_padding_mask` (batch, seq) is True where a key is real.

    q is (batch, heads, queries, head_dim); k and v (batch, kv_heads, keys, head_dim) may have
    fewer heads (grouped-query attention) and more positions (a window of queries over cached keys).
    """
    attn_mask = None if key_padding_mask is None else key_padding_mask[:, None, None, :].to(torch.bool)
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and _SDPA_GROUPS_HEADS:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=False, enable_gqa=True)
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=False)


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(batch, seq, n_heads * head_dim) -> (batch, n_heads, seq, head_dim)."""
    batch, seq, _ = x.shape
    return x.view(batch, seq, n_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(batch, heads, seq, head_dim) -> (batch, seq, heads * head_dim)."""
    batch, _, seq, _ = x.shape
    return x.transpose(1, 2).reshape(batch, seq, -1)
