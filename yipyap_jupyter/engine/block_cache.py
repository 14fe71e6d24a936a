"""Block-causal attention, and the exact key/value cache of committed blocks (LLaDA 2.x, SDAR).

Block-diffusion models cut the canvas into blocks of `block_length` positions from
position 0: a position attends to every position of its own block and of the blocks
before it, never to a later block. A committed block never changes again, and nothing
before it changes either, so its keys and values are final: a cache of them is exact,
not an approximation like Fast-dLLM's (`kv_cache`).

A `BlockCache` belongs to one row. A pass over canvas positions `start..start+n` writes
its keys/values at `start..` and attends to positions `0..start+n`; those before `start`
were written by earlier passes. A block program runs a window that begins with the
blocks committed since its last pass and ends with the block it denoises: the one pass
both stores the committed blocks and predicts the current one (whose keys/values, also
written, are overwritten by the pass after its commit). Without `keep` (the recomputing
loop) the cache stores nothing: every pass starts at 0 and attends within its window.

`BlockLayout` is the `Layout` (see `packing`) of a block network's pass: a plain batch
(`block_length` given, or one bidirectional block) or packed rows, each with its cache.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .kv_cache import KVCache, LayerKV
from .layers import merge_heads
from .packing import Dense, LogitPositions, Packing

# `enable_gqa` (torch >= 2.5) shares key/value heads without copying them per query head
_SDPA_GROUPS_HEADS = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 5)


class BlockCache(KVCache):
    """One row's keys/values (batch, kv_heads, capacity, head_dim) per layer, and where its blocks are.

    Args:
        block_length: positions per block, counted from canvas position 0.
        capacity: the most positions the canvas will hold.
        keep: keep the keys/values between passes (the block cache); False: every pass attends
            only within its own window, which starts at 0 (the recomputing loop).
    """

    def __init__(self, block_length: int, capacity: int, *, keep: bool = True) -> None:
        super().__init__()
        self.block_length = block_length
        self.capacity = capacity
        self.keep = keep

    def layer(self, index: int, start: int) -> LayerKV:
        """Layer `index`'s hook for a pass from canvas position `start`: the keys/values to attend to."""
        if not self.keep:
            if start != 0:
                raise ValueError("a BlockCache that keeps nothing runs windows from position 0")
            return lambda k, v: (k, v)

        def keys_values(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            end = start + k.shape[2]
            if end > self.capacity:
                raise ValueError(f"a pass to position {end} overruns the cache's {self.capacity} positions")
            if index == len(self.keys):
                shape = (k.shape[0], k.shape[1], self.capacity, k.shape[3])
                self.keys.append(k.new_empty(shape))
                self.values.append(v.new_empty(shape))
            keys, values = self.keys[index], self.values[index]
            keys[:, :, start:end] = k
            values[:, :, start:end] = v
            return keys[:, :, :end], values[:, :, :end]

        return keys_values


def block_causal_mask(
    start: int, length: int, block_length: int | None, device: torch.device
) -> torch.Tensor | None:
    """Which keys (positions 0..start+length) each query (start..start+length) sees: (length, keys), or None for all.

    A query sees a key when the key's block is not after the query's; a window inside one
    block sees every key, and so does every window when `block_length` is None (one block).
    """
    if block_length is None or start // block_length == (start + length - 1) // block_length:
        return None
    query_blocks = torch.arange(start, start + length, device=device) // block_length
    key_blocks = torch.arange(start + length, device=device) // block_length
    return key_blocks[None, :] <= query_blocks[:, None]


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot-product attention; k and v may have fewer heads (grouped queries); `mask` True where a key is seen."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and _SDPA_GROUPS_HEADS:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class BlockLayout:
    """The `Layout` of a block network's pass: a plain batch, or packed rows each with its `BlockCache`.

    Args:
        input_ids: (batch, seq) canvases from position 0, or (1, total) packed windows.
        packing: the packed rows; each segment's cache must be a `BlockCache` (it says where the blocks are).
        block_length: for a plain batch, its blocks (None: the whole input is one block, bidirectional).
        logits_at: for a plain batch, the positions to return logits for (default: all).
    """

    def __init__(
        self,
        input_ids: torch.Tensor,
        packing: Packing | None = None,
        block_length: int | None = None,
        logits_at: LogitPositions | None = None,
    ) -> None:
        self.packing = packing
        self._inner: Packing | Dense = packing if packing is not None else Dense(None, logits_at)
        device = input_ids.device
        if packing is None:
            self._masks = [block_causal_mask(0, input_ids.shape[1], block_length, device)]
            return
        self._caches: list[BlockCache] = []
        self._masks = []
        for segment in packing.segments:
            if not isinstance(segment.cache, BlockCache):
                raise ValueError("a block network's packed rows each need a BlockCache")
            self._caches.append(segment.cache)
            self._masks.append(block_causal_mask(segment.start, segment.length, segment.cache.block_length, device))

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._inner.positions(input_ids)

    def each_row_in_place(self, fn_: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self._inner.each_row_in_place(fn_, x)

    def logit_positions(self, x: torch.Tensor) -> torch.Tensor:
        return self._inner.logit_positions(x)

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Layer `layer`'s attention output (batch, seq, heads * head_dim) for q, k, v (batch, heads, seq, head_dim)."""
        if self.packing is None:
            return merge_heads(attention(q, k, v, self._masks[0]))
        _, heads, total, head_dim = q.shape
        merged, offset = q.new_empty(1, total, heads * head_dim), 0
        for segment, cache, mask in zip(self.packing.segments, self._caches, self._masks, strict=True):
            qs, ks, vs = (_rows(t.narrow(2, offset, segment.size), segment.sequences) for t in (q, k, v))
            ks, vs = cache.layer(layer, segment.start)(ks, vs)
            out = attention(qs, ks, vs, mask)  # (sequences, heads, length, head_dim)
            merged.narrow(1, offset, segment.size).view(segment.sequences, segment.length, heads, head_dim).copy_(
                out.transpose(1, 2))
            offset += segment.size
        return merged


def _rows(t: torch.Tensor, sequences: int) -> torch.Tensor:
    """(1, heads, sequences * length, head_dim) -> (sequences, heads, length, head_dim), a view."""
    return t[0].unflatten(1, (sequences, -1)).transpose(0, 1)
