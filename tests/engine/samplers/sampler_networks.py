"""Networks whose logits a sampler test scripts, and the token ids the sampler tests use.

Token ids: 0..9 ordinary tokens, 10 BOS, 11 EOS (DreamOn's delete token),
12 `<|expand|>`, 13 EoT, 15 the mask. Vocabulary 16.
"""

from __future__ import annotations

import torch
from torch import nn

from yipyap_jupyter.engine.packing import select_positions  # the positions a sampler asked logits for

VOCAB = 16
BOS, EOS, EXPAND, EOT, MASK = 10, 11, 12, 13, 15


class FixedLogits(nn.Module):
    """Returns the same logits (1, L, VOCAB) whatever the input; records every input batch."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.inputs: list[torch.Tensor] = []

    def forward(self, input_ids: torch.Tensor, attention_mask=None, position_ids=None, logits_at=None) -> torch.Tensor:
        self.inputs.append(input_ids.clone())
        return select_positions(self.logits.expand(input_ids.shape[0], -1, -1), logits_at).clone()


class ScriptedNetwork(nn.Module):
    """Each call reads the next entry of a script and makes the sampler commit exactly that.

    An entry is a list of `(nth_mask, tokens)`: the nth masked position of the current
    window (counted from the left) gets logit 20 for `tokens[0]`, 10 for `tokens[1]` if
    given (the fall-back when the first is blocked), and every other position gets flat
    logits. With Dream's logit shift the row written is the one before the position.
    Records (input_ids, attention_mask, position_ids) of every call.
    """

    def __init__(self, script: list[list[tuple[int, tuple[int, ...]]]], *, shift: bool) -> None:
        super().__init__()
        self.script = script
        self.shift = shift
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask=None, position_ids=None, logits_at=None) -> torch.Tensor:
        self.calls.append((input_ids.clone(), attention_mask, position_ids))
        window = input_ids.shape[1] if attention_mask is None else int(attention_mask[0].sum())
        masks = (input_ids[0, :window] == MASK).nonzero().flatten()
        logits = torch.zeros(1, input_ids.shape[1], VOCAB)
        for nth, tokens in self.script[len(self.calls) - 1]:
            row = int(masks[nth]) - 1 if self.shift else int(masks[nth])
            for token, value in zip(tokens, (20.0, 10.0)[: len(tokens)], strict=True):
                logits[0, row, token] = value
        return select_positions(logits, logits_at)
