"""HTML and plain-text views of a denoising canvas, for cells, panels and replays.

One place decides what a step looks like: masked positions are shaded blocks,
tokens committed this step are highlighted, earlier ones are plain, and the
prompt (or the infill prefix and suffix) is set apart in grey. Every view also
has a `text/plain` twin so terminals, nbconvert and nbval see text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from ..constants import MASK_GLYPH

CANVAS_STYLE = (
    "font-family: var(--jp-code-font-family, monospace); font-size: 13px; line-height: 1.6;"
    " white-space: pre-wrap; word-break: break-word; padding: 6px 8px;"
    " border-left: 3px solid #7c8ee8;"
)
CONTEXT_STYLE = "color: #8a8a8a;"
MASK_STYLE = "background: #c9ccd6; color: #c9ccd6; border-radius: 2px;"
CHANGED_STYLE = "background: #ffe27a; border-radius: 2px;"
FOOTER_STYLE = "font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px; color: #6b6b6b; padding: 2px 8px;"
ERROR_STYLE = "color: #b3261e;"


@dataclass(frozen=True)
class Context:
    """What surrounds the generated region: the prompt before it, or an infill's prefix and suffix."""

    before: str = ""
    after: str = ""


def _span(text: str, style: str) -> str:
    return f'<span style="{style}">{html.escape(text)}</span>'


def _framed(context: Context, body_html: str, footer: str) -> str:
    """The region's HTML between its greyed context, in the canvas box, then the footer line."""
    before = _span(context.before, CONTEXT_STYLE) if context.before else ""
    after = _span(context.after, CONTEXT_STYLE) if context.after else ""
    tail = footer_html(footer) if footer else ""
    return f'<div class="yipyap-canvas" style="{CANVAS_STYLE}">{before}{body_html}{after}</div>{tail}'


def canvas_html(context: Context, pieces: Sequence[str], changed: Sequence[int], footer: str = "") -> str:
    """The canvas of one step as HTML: context grey, masks shaded, this step's tokens highlighted."""
    fresh = set(changed)
    body = []
    for index, piece in enumerate(pieces):
        if piece == MASK_GLYPH:
            body.append(_span(MASK_GLYPH, MASK_STYLE))
        elif index in fresh:
            body.append(_span(piece, CHANGED_STYLE))
        else:
            body.append(html.escape(piece))
    return _framed(context, "".join(body), footer)


def canvas_text(pieces: Sequence[str], footer: str = "") -> str:
    """The plain-text twin of `canvas_html`: the region with mask glyphs, then the footer line."""
    body = "".join(pieces)
    return f"{body}\n{footer}" if footer else body


def text_html(context: Context, text: str, footer: str = "") -> str:
    """A finished text in its context (no masks left), with a footer line."""
    return _framed(context, html.escape(text), footer)


def footer_html(footer: str, error: bool = False) -> str:
    """One grey status line under a canvas (red for errors)."""
    style = FOOTER_STYLE + (ERROR_STYLE if error else "")
    return f'<div class="yipyap-footer" style="{style}">{html.escape(footer)}</div>'


def progress_line(step: int, total_steps: int, tokens: int, elapsed: float) -> str:
    """`step k/N · x tok/s`: where a live generation stands."""
    rate = tokens / elapsed if elapsed > 0 else 0.0
    return f"step {step}/{total_steps} · {rate:.1f} tok/s"


def summary_line(tokens: int, steps: int, seconds: float, model: str, device: str) -> str:
    """`N tokens · S steps · T s · model · device`: the line a finished generation ends with."""
    return f"{tokens} tokens · {steps} steps · {seconds:.2f} s · {model} · {device}"


def error_line(error_type: str, message: str, retryable: bool) -> str:
    """A failure as users see it everywhere: category, message, and whether a retry may help."""
    retry = "a retry may help" if retryable else "retrying will not help"
    return f"{error_type} error: {message} ({retry})"
