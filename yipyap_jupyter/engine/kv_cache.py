"""Fast-dLLM's block-wise approximate key/value cache, shared by the LLaDA and Dream networks.

A full-sequence forward at the start of a block fills the cache with every
layer's keys and values (after the rotary embedding). The block's later steps
run the network on a window of the canvas only: each layer writes the window's
fresh keys/values over the cached ones and attends to the whole cache. A window
of the block alone is Fast-dLLM's dual cache (prefix and suffix reused); the
block plus everything to its right is its prefix cache (the cached suffix is
overwritten every step, so only the prefix is reused). The sampler owns the
cache and drops it at the next block.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: What a layer calls with its own keys and values; returns the keys and values to attend to.
LayerKV = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class KVCache:
    """Per-layer keys and values (batch, kv_heads, canvas, head_dim) of the last full pass."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def layer(self, index: int, start: int) -> LayerKV:
        """The keys/values hook of layer `index` for a pass over canvas positions `start`.. (0 to fill)."""
        filling = index == len(self.keys)
        if filling and start != 0:
            raise ValueError("an empty KVCache is filled by a full pass over the canvas")

        def keys_values(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if filling:
                self.keys.append(k)
                self.values.append(v)
                return k, v
            keys, values = self.keys[index], self.values[index]
            keys[:, :, start : start + k.shape[2]] = k
            values[:, :, start : start + v.shape[2]] = v
            return keys, values

        return keys_values
