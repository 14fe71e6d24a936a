"""What a generation hands back to the notebook: text, history, timings, and how it was decoded.

A `DiffusionResult` is the value of a `%%diffuse` cell and of
`DiffusionClient.generate` / `.infill`: it renders as HTML in a notebook and
as text with a summary line in a terminal, and keeps every step for `replay()`
and `decode_order()`. A stopped generation leaves a partial result (the text
settled so far) on the `GenerationStopped` it raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from .render import (
    Context,
    decode_order_html,
    decode_order_text,
    options_line,
    stopped_line,
    summary_line,
    text_html,
)

if TYPE_CHECKING:
    from ..service.events import StepEvent


@dataclass
class DiffusionResult:
    """A finished (or stopped) generation or infilling.

    Attributes:
        text: the final text (after `auto_trim` / `fix_punctuation`); when stopped, the text settled so far.
        raw_text: the text as generated.
        history: the canvas after each step, masks shown as the mask glyph.
        generation_time: seconds the model worked.
        model: the model that wrote it; device: where it ran.
        tokens: tokens generated; steps: denoising steps taken.
        context: the prompt, or the infill's prefix and suffix.
        frames: every step event (pieces, changed positions, confidences) for `replay()` and `decode_order()`.
        options: the effective sampler options that ran (steps, block length, temperature, ...).
        stopped_of: for a stopped run, the number of steps it would have taken; None when it finished.
        block_origin: the token position blocks of `options["block_length"]` are counted from (less than 0
            where the first block began in the prompt: LLaDA 2.x, SDAR).
    """

    text: str
    raw_text: str
    history: list[str]
    generation_time: float
    model: str
    device: str
    tokens: int
    steps: int
    context: Context = field(default_factory=Context)
    frames: list[StepEvent] = field(default_factory=list, repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    stopped_of: int | None = None
    block_origin: int = 0

    @property
    def summary(self) -> str:
        """`N tokens · S steps · T s · model · device` (or where it stopped), then the options that ran."""
        if self.stopped_of is not None:
            head = f"{stopped_line(self.steps, self.stopped_of)} · {self.generation_time:.2f} s"
        else:
            head = summary_line(self.tokens, self.steps, self.generation_time, self.model, self.device)
        options = options_line(self.options)
        return f"{head}\n{options}" if options else head

    @property
    def filled(self) -> str:
        """The whole text: prompt + generation, or prefix + infill + suffix."""
        return self.context.before + self.text + self.context.after

    def replay(self) -> Any:
        """A slider over the steps of this generation (an ipywidgets panel)."""
        from .panels.replay import ReplayPanel

        return ReplayPanel(self)

    def decode_order(self) -> DecodeOrder:
        """The text with each token coloured by the step that committed it, and a chart of tokens per step."""
        return DecodeOrder(self)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"{self.text}\n{self.summary}"

    def _repr_html_(self) -> str:
        return text_html(self.context, self.text, self.summary)


Token = tuple[str, "int | None", "float | None"]


def committed_at(frames: list[StepEvent]) -> list[Token]:
    """Each position of the last frame with the step that committed it and its confidence,
    leaving out end-of-text padding (empty pieces)."""
    return [token for token in _positions(frames) if _shown(token)]


def _positions(frames: list[StepEvent]) -> list[Token]:
    """Every position of the last frame, padding included, with the step that committed it and its confidence.

    Variable-length infilling grows and shrinks the region; when its length changes,
    what is known about the old positions follows them through a sequence alignment.
    """
    steps: list[int | None] = []
    confidences: list[float | None] = []
    previous: list[str] = []
    for frame in frames:
        if len(frame.pieces) != len(previous):
            moved_steps: list[int | None] = [None] * len(frame.pieces)
            moved_confidences: list[float | None] = [None] * len(frame.pieces)
            for a, b, size in SequenceMatcher(None, previous, frame.pieces, autojunk=False).get_matching_blocks():
                moved_steps[b:b + size] = steps[a:a + size]
                moved_confidences[b:b + size] = confidences[a:a + size]
            steps, confidences = moved_steps, moved_confidences
        for k, index in enumerate(frame.changed):  # `confidences` is parallel to `changed`, or empty
            steps[index] = frame.step
            confidences[index] = frame.confidences[k] if k < len(frame.confidences) else None
        previous = list(frame.pieces)
    return list(zip(previous, steps, confidences, strict=True))


def _shown(token: Token) -> bool:
    """A position the view draws: a real piece, or a mask never committed (a stopped run)."""
    piece, step, _ = token
    return bool(piece) or step is None


def block_starts(frames: list[StepEvent], block_length: int | None, origin: int = 0) -> list[int]:
    """Indices into `committed_at(frames)` of the tokens that begin a block (the first token left out).

    Blocks are counted in positions of the generated region from `origin` (less than 0 where
    the first block began in the prompt), padding included, so the marks stay where the
    sampler's blocks were when end-of-text padding is left out; a boundary whose position is
    padding goes before the next token shown. A region inside one block, or one whose length
    changed (variable-length infilling), has none.
    """
    if not frames or not block_length or len({len(frame.pieces) for frame in frames}) > 1:
        return []
    starts: list[int] = []
    shown = 0
    for position, token in enumerate(_positions(frames)):
        if position and (position - origin) % block_length == 0 and (not starts or starts[-1] != shown):
            starts.append(shown)
        shown += _shown(token)
    return [start for start in starts if start < shown]


class DecodeOrder:
    """`result.decode_order()`: HTML (inline styles and SVG, no JavaScript) with a text/plain twin."""

    def __init__(self, result: DiffusionResult) -> None:
        self.result = result
        self.tokens = committed_at(result.frames)
        self.per_step = [len(frame.changed) for frame in result.frames]
        self.block_length: int | None = result.options.get("block_length")
        self.block_starts = block_starts(result.frames, self.block_length, result.block_origin)

    def _repr_html_(self) -> str:
        return decode_order_html(self.result.context, self.tokens, self.per_step, self.result.summary,
                                 self.block_starts)

    def __repr__(self) -> str:
        return decode_order_text(self.tokens, self.per_step, self.block_starts, self.block_length)
