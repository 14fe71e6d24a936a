"""Several requests in one forward pass: their windows packed end to end, each computed as if alone.

The rows of a decoding batch have canvases of different lengths, and with a key/value
cache each runs a different window of its canvas. Packing concatenates every row's
window into one sequence (1, total) for the network's layers, and splits it only
around what is not computed position by position: attention (each row's queries meet
only its own keys, or its own cache) and the element-wise functions built on `exp`,
`sin` and `cos` (SiLU, the rotary tables). Their vectorised CPU kernels compute the
tail of a loop, and each thread's chunk of a large tensor ends where its size puts
it, with the scalar library function, which rounds differently; so they run in place
on each row's part, with the shapes of the row's solo pass. RMSNorm needs no split:
its square root and division are correctly rounded, and its mean reduces each
position on its own. Nothing is padded, so no position is wasted, and every row's
logits equal its solo logits to the last bit on the CPU (`tests/engine/test_packing.py`).
(GPU matrix kernels may choose other tilings for other batch sizes, so there a packed
row matches its solo run only to rounding; so may a CPU pass of fewer than 12
positions, which the matrix library computes with other kernels.)

A `Dense` layout is the ordinary (batch, seq) pass the official code runs. A network
that cannot pack (a library's class, `packs = False`) is run one pass per row by the
batch instead (`engine.runtime.batch`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import torch

from .kv_cache import KVCache
from .layers import bidirectional_attention, merge_heads, rotary_tables

#: The window positions a pass returns logits for: a range (start, end), or the positions themselves
#: (1-D, increasing), such as the masks a greedy step still has to fill.
LogitPositions = tuple[int, int] | torch.Tensor


def select_positions(x: torch.Tensor, at: LogitPositions | None) -> torch.Tensor:
    """The positions `at` of `x` (batch, seq, ...) along its second dimension (all of them for None)."""
    if at is None:
        return x
    if isinstance(at, tuple):
        return x[:, at[0]:at[1]]
    return x.index_select(1, at)


class Layout(Protocol):
    """How the sequences of one forward pass sit in its input, as the network's layers need to know."""

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Rotary positions of `input_ids` when the caller gives none."""

    def each_row_in_place(self, fn_: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """`x` (batch, seq, ...) after the in-place `fn_` ran on every row's part, as in the row's solo pass."""

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Layer `layer`'s attention output (batch, seq, heads * head_dim), heads merged, for queries,
        keys and values (batch, heads, seq, head_dim)."""

    def logit_positions(self, x: torch.Tensor) -> torch.Tensor:
        """The positions of the last hidden states `x` (batch, seq, d) that the vocabulary head runs on."""


class Dense:
    """An ordinary batch of equally long sequences; `key_padding_mask` (batch, seq) marks the real tokens.

    `logits_at` limits the logits to those positions (default: all).
    """

    def __init__(self, key_padding_mask: torch.Tensor | None = None, logits_at: LogitPositions | None = None) -> None:
        self.key_padding_mask = key_padding_mask
        self.logits_at = logits_at

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        return torch.arange(input_ids.shape[1], device=input_ids.device).expand(input_ids.shape[0], -1)

    def each_row_in_place(self, fn_: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        fn_(x)
        return x

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return merge_heads(bidirectional_attention(q, k, v, self.key_padding_mask))

    def logit_positions(self, x: torch.Tensor) -> torch.Tensor:
        return select_positions(x, self.logits_at)


@dataclass(frozen=True)
class Segment:
    """One row's part of a packed pass: `sequences` windows of `length` positions from canvas position `start`.

    A row has two sequences under classifier-free guidance (conditional and unconditional
    canvas). With a `cache`, the window attends to the cached keys/values of its whole canvas
    (and fills the cache when it is empty); without, only to itself. `logits_at` are the
    window's positions that get logits (default: all).
    """

    length: int
    start: int = 0
    sequences: int = 1
    cache: KVCache | None = None
    logits_at: LogitPositions | None = None

    @property
    def size(self) -> int:
        return self.length * self.sequences

    @property
    def logit_count(self) -> int:
        """Positions that get logits, in each sequence."""
        at = self.logits_at
        if at is None:
            return self.length
        return at[1] - at[0] if isinstance(at, tuple) else len(at)


class Packing:
    """Rows' windows end to end in a (1, total) input; each row is computed as in its solo pass."""

    def __init__(self, segments: list[Segment]) -> None:
        self.segments = segments
        self._sizes = [segment.size for segment in segments]

    def positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(1, total): each window counts from its own start."""
        device = input_ids.device
        return torch.cat([torch.arange(s.start, s.start + s.length, device=device).repeat(s.sequences)
                          for s in self.segments])[None]

    def each_row_in_place(self, fn_: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        for part in x.split(self._sizes, dim=1):
            fn_(part)
        return x

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        _, heads, total, head_dim = q.shape
        merged, offset = q.new_empty(1, total, heads * head_dim), 0
        for segment in self.segments:
            # narrow, not split: a cache keeps these keys and writes later windows into them in place
            qs, ks, vs = (_unpack(t.narrow(2, offset, segment.size), segment.sequences) for t in (q, k, v))
            if segment.cache is not None:
                ks, vs = segment.cache.layer(layer, segment.start)(ks, vs)
            out = bidirectional_attention(qs, ks, vs, None)  # (sequences, heads, length, head_dim)
            # one copy, into the row's positions as `merge_heads` lays them out
            merged.narrow(1, offset, segment.size).view(segment.sequences, segment.length, heads, head_dim).copy_(
                out.transpose(1, 2))
            offset += segment.size
        return merged

    def logit_positions(self, x: torch.Tensor) -> torch.Tensor:
        """Each row's logit positions of each of its sequences, end to end: (1, sum of their sizes, d)."""
        parts = [select_positions(part.view(segment.sequences, segment.length, -1), segment.logits_at)
                 .reshape(1, -1, x.shape[-1])
                 for part, segment in zip(x.split(self._sizes, dim=1), self.segments, strict=True)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """Per-row (sequences, positions, vocab) parts of the packed (1, total, vocab) logits."""
        sizes = [s.sequences * s.logit_count for s in self.segments]
        return [part.unflatten(0, (s.sequences, s.logit_count))
                for part, s in zip(logits[0].split(sizes), self.segments, strict=True)]


def _unpack(t: torch.Tensor, sequences: int) -> torch.Tensor:
    """(1, heads, sequences * length, head_dim) -> (sequences, heads, length, head_dim).

    A view with the strides the same tensor has in a dense pass: attention kernels round
    differently for other layouts.
    """
    return t[0].unflatten(1, (sequences, -1)).transpose(0, 1)


def through_layers(
    x: torch.Tensor,
    layers: Iterable[Callable[..., torch.Tensor]],
    input_ids: torch.Tensor,
    *,
    head_dim: int,
    rope_theta: float,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    packing: Packing | None,
    logits_at: LogitPositions | None,
) -> torch.Tensor:
    """`x`, the embedded `input_ids`, through the `layers` of a whole-canvas network (LLaDA, Dream) in one pass.

    The pass's layout is `packing`, or a dense one (`attention_mask`, `logits_at`); the rotary
    positions are `position_ids`, or the layout's. Each layer is called
    `layer(x, rope, layout, index)`. Returns the hidden states at the positions that want
    logits, for the network's final norm and head.
    """
    layout: Layout = packing if packing is not None else Dense(attention_mask, logits_at)
    if position_ids is None:
        position_ids = layout.positions(input_ids)
    rope = rotary_tables(position_ids, head_dim, rope_theta, layout.each_row_in_place)
    for index, layer in enumerate(layers):
        x = layer(x, rope, layout, index)
    return layout.logit_positions(x)
