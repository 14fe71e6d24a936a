"""The one place token ids become text: pieces, the settled text, the canvas, per step.

A sampler step changes a few positions of the region; everything else is as it was.
The decoder keeps what it decoded before (one piece per token id, one text per run
of tokens between masks), so each step decodes only the runs that changed. Runs are
decoded whole, so a multi-byte character split over two tokens stays whole.

Each position has a state (masked, unsettled, settled, edited: `samplers.base`) that the
views draw; the settled text is the text before the first position that is not final
(a mask, or an unsettled draft token of uniform-state diffusion).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .samplers.base import EDITED, MASKED, SETTLED, STATE_NAMES, SamplerStep
from .tokenizer import SpecialIds


@dataclass(frozen=True)
class GenerationStep:
    """One denoising step of the generated region (the middle, for infilling), decoded.

    Attributes:
        step, total_steps: this step and the steps the run will take (for runs whose length
            is not fixed in advance, an estimate from the masks left that ends at `step`).
        tokens: the region's token ids now; `pieces` their strings, a mask as `mask_glyph`.
        states: each position's state: "masked", "unsettled", "settled" or "edited".
        changed: indices in `tokens` committed by this step; `confidences` the sampler's
            confidence for each.
        settled_text: the text before the first position that is not final (left-to-right front).
        canvas: the whole region, masks shown as the glyph, end-of-text padding as nothing.
        text: the region's committed text (equal to `settled_text` once no mask is left).
        progress: the share of the region decided, 1.0 when no mask is left; never less than the
            previous step's (a variable-length gap that grows adds masks, and progress holds still).
        text_tokens: tokens in `text`; `ended`: an end-of-text token was committed.
        block_origin: the region position the sampler's blocks are counted from: 0, or less where
            the first block begins in the prompt (LLaDA 2.x, SDAR).
    """

    step: int
    total_steps: int
    tokens: tuple[int, ...]
    pieces: tuple[str, ...]
    states: tuple[str, ...]
    changed: tuple[int, ...]
    confidences: tuple[float, ...]
    settled_text: str
    canvas: str
    text: str
    progress: float
    text_tokens: int
    ended: bool
    block_origin: int = 0


class IncrementalDecoder:
    """Decodes the steps of one run.

    Args:
        tokenizer: the model's tokenizer.
        ids: its special tokens; `ids.stops` end the text (after them is padding).
        mask_glyph: how a still-masked position is shown (a view's choice).
        cut_at_stop: generation ends at the first end-of-text token; infilling keeps the
            whole middle and drops end tokens from the text.
        exact_total: the sampler's `total_steps` is the true count (a fixed schedule); when
            False it is estimated from the masks left.
    """

    def __init__(
        self, tokenizer: Any, ids: SpecialIds, *, mask_glyph: str, cut_at_stop: bool, exact_total: bool
    ) -> None:
        self.tokenizer = tokenizer
        self.mask = ids.mask
        self.stops = ids.stops
        self.mask_glyph = mask_glyph
        self.cut_at_stop = cut_at_stop
        self.exact_total = exact_total
        self._pieces: dict[int, str] = {stop: "" for stop in ids.stops}
        self._runs: dict[tuple[int, ...], str] = {(): ""}
        self._progress = 0.0

    def decode(self, steps: Iterator[SamplerStep]) -> Iterator[GenerationStep]:
        """The decoded steps of `steps`, one for one."""
        for s in steps:
            yield self.step(s)

    def step(self, s: SamplerStep) -> GenerationStep:
        start, end = s.span
        tokens = tuple(s.canvas[start:end].tolist())
        if s.states is None:
            states = tuple(MASKED if t == self.mask else SETTLED for t in tokens)
        else:
            states = tuple(s.states[start:end].tolist())
        final = [state in (SETTLED, EDITED) for state in states]
        shown_end = len(tokens)
        if self.cut_at_stop:
            shown_end = next((i for i, t in enumerate(tokens) if t in self.stops and final[i]), shown_end)
        runs = self._split(tokens[:shown_end], states)
        texts = [self._run_text(run) for run in runs]
        masks_left = len(runs) - 1
        kept = sum(len(run) for run in runs) - sum(1 for t in tokens[:shown_end] if t in self.stops)
        front = next((i for i in range(shown_end) if not final[i]), shown_end)
        if s.settled_end is not None:
            front = min(front, s.settled_end - start)
        settled = texts[0] if front == len(runs[0]) else self._run_text(tokens[:front])
        masked = states.count(MASKED)
        done = s.progress if s.progress is not None else sum(final) / len(tokens) if tokens else 1.0
        self._progress = max(self._progress, done)
        return GenerationStep(
            step=s.step,
            total_steps=s.total_steps if self.exact_total else s.step + masked,
            tokens=tokens,
            pieces=tuple(self.mask_glyph if state == MASKED else self._piece(t) for t, state in zip(tokens, states)),
            states=tuple(STATE_NAMES[state] for state in states),
            changed=tuple(int(i) - start for i in s.changed.tolist()),
            confidences=tuple(round(float(c), 4) for c in s.confidences.tolist()),
            settled_text=settled,
            canvas=self.mask_glyph.join(texts),
            text="".join(texts) if masks_left else texts[0],
            progress=self._progress,
            text_tokens=kept,
            ended=shown_end < len(tokens),
            block_origin=0 if s.blocks_from is None else s.blocks_from - start,
        )

    def _split(self, tokens: tuple[int, ...], states: tuple[int, ...]) -> list[tuple[int, ...]]:
        """Runs of tokens between masked positions (n masks give n + 1 runs, some empty)."""
        runs: list[tuple[int, ...]] = []
        run_start = 0
        for i in range(len(tokens)):
            if states[i] == MASKED:
                runs.append(tokens[run_start:i])
                run_start = i + 1
        runs.append(tokens[run_start:])
        return runs

    def _run_text(self, run: tuple[int, ...]) -> str:
        text = self._runs.get(run)
        if text is None:
            kept = [t for t in run if t not in self.stops]
            text = self._runs[run] = self.tokenizer.decode(kept, skip_special_tokens=True)
        return text

    def _piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.tokenizer.decode([token])
        return piece
