"""HTML and plain-text views of a denoising canvas, for cells, panels, replays and the CLI.

One place decides what a generation looks like: each position is drawn by its state
(the step's `states`): masked positions are shaded blocks, unsettled ones (real tokens
that may still change: uniform-state diffusion's draft) are dim and underlined, edited
ones (replaced after they settled) are marked, tokens committed this step are
highlighted, earlier ones are plain, and the prompt (or the infill prefix and suffix)
is set apart in grey. Every view also has a
`text/plain` twin so terminals, nbconvert and nbval see text. All styles are inline
and nothing needs JavaScript, so the same HTML works in JupyterLab, VS Code and
nbconvert.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..constants import MASK_GLYPH as WIRE_MASK

#: How a still-masked position is drawn.
MASK_SHOWN = "▒"
#: The states of a step's positions (`StepEvent.states`).
MASKED, UNSETTLED, SETTLED, EDITED = "masked", "unsettled", "settled", "edited"

CANVAS_STYLE = (
    "font-family: var(--jp-code-font-family, monospace); font-size: 13px; line-height: 1.6;"
    " white-space: pre-wrap; word-break: break-word; padding: 6px 8px;"
    " border-left: 3px solid #7c8ee8;"
)
CONTEXT_STYLE = "color: #8a8a8a;"
MASK_STYLE = "background: #c9ccd6; color: #c9ccd6; border-radius: 2px;"
UNSETTLED_STYLE = "color: #7a86b8; text-decoration: underline dotted #9aa3cc;"
EDITED_STYLE = "background: #d8f0d2; border-radius: 2px;"
CHANGED_STYLE = "background: #ffe27a; border-radius: 2px;"
FOOTER_STYLE = "font-family: var(--jp-ui-font-family, sans-serif); font-size: 12px; color: #6b6b6b; padding: 2px 8px;"
ERROR_STYLE = "color: #b3261e;"

#: Option names as the footer shows them, in this order (the complete event's `options`): the ones that say
#: most about a run; the rest are in `result.options`.
OPTION_LABELS = {
    "model": "model", "max_new_tokens": "max new tokens", "steps": "steps", "block_length": "block",
    "temperature": "temperature", "remasking": "remasking", "alg": "alg", "threshold": "threshold",
    "editing_threshold": "editing threshold", "max_post_steps": "max post steps", "eos_early_stop": "eos early stop",
    "cache": "cache", "entropy_bound": "entropy bound", "t_min": "t min", "t_max": "t max", "seed": "seed",
}


@dataclass(frozen=True)
class Context:
    """What surrounds the generated region: the prompt before it, or an infill's prefix and suffix."""

    before: str = ""
    after: str = ""


def states_of(pieces: Sequence[str], states: Sequence[str] = ()) -> list[str]:
    """Each position's state; for a step without states (an older server), masked where the piece is the glyph."""
    if states:
        return list(states)
    return [MASKED if piece == WIRE_MASK else SETTLED for piece in pieces]


def shown(pieces: Sequence[str], states: Sequence[str] = ()) -> str:
    """The region as text, masks drawn as `MASK_SHOWN`."""
    return "".join(MASK_SHOWN if state == MASKED else piece for piece, state in zip(pieces, states_of(pieces, states)))


def committed_count(pieces: Sequence[str], states: Sequence[str] = ()) -> int:
    """How many positions of the region are final (settled or edited)."""
    return sum(1 for state in states_of(pieces, states) if state in (SETTLED, EDITED))


def _span(text: str, style: str, title: str = "") -> str:
    hover = f' title="{html.escape(title)}"' if title else ""
    return f'<span style="{style}"{hover}>{html.escape(text)}</span>'


def _framed(context: Context, body_html: str, footer: str, css_class: str = "yipyap-canvas") -> str:
    """The region's HTML between its greyed context, in the canvas box, then the footer line."""
    before = _span(context.before, CONTEXT_STYLE) if context.before else ""
    after = _span(context.after, CONTEXT_STYLE) if context.after else ""
    tail = footer_html(footer) if footer else ""
    return f'<div class="{css_class}" style="{CANVAS_STYLE}">{before}{body_html}{after}</div>{tail}'


def canvas_html(context: Context, pieces: Sequence[str], changed: Sequence[int], footer: str = "",
                states: Sequence[str] = ()) -> str:
    """The canvas of one step as HTML: context grey, each position by its state, this step's tokens highlighted."""
    fresh = set(changed)
    body = []
    for index, (piece, state) in enumerate(zip(pieces, states_of(pieces, states))):
        if state == MASKED:
            body.append(_span(MASK_SHOWN, MASK_STYLE))
        elif index in fresh:
            body.append(_span(piece, CHANGED_STYLE))
        elif state == UNSETTLED:
            body.append(_span(piece, UNSETTLED_STYLE, "unsettled: may still change"))
        elif state == EDITED:
            body.append(_span(piece, EDITED_STYLE, "edited after it settled"))
        else:
            body.append(html.escape(piece))
    return _framed(context, "".join(body), footer)


def canvas_text(pieces: Sequence[str], footer: str = "", states: Sequence[str] = ()) -> str:
    """The plain-text twin of `canvas_html`: the region with masks shown, then the footer line."""
    body = shown(pieces, states)
    return f"{body}\n{footer}" if footer else body


def text_html(context: Context, text: str, footer: str = "") -> str:
    """A finished text in its context (no masks left), with a footer line."""
    return _framed(context, html.escape(text), footer, "yipyap-canvas yipyap-result")


def footer_html(footer: str, error: bool = False) -> str:
    """Grey status lines under a canvas (red for errors); one `<div>` per line."""
    style = FOOTER_STYLE + (ERROR_STYLE if error else "")
    return "".join(f'<div class="yipyap-footer" style="{style}">{html.escape(line)}</div>'
                   for line in footer.split("\n"))


def progress_line(step: int, total_steps: int, tokens: int, elapsed: float) -> str:
    """`step k/N · x tok/s`: where a live generation stands (`tokens` committed in `elapsed` seconds).

    The rate is left out until some time has passed (the first step), rather than shown as 0.
    """
    if elapsed <= 0:
        return f"step {step}/{total_steps}"
    return f"step {step}/{total_steps} · {tokens / elapsed:.1f} tok/s"


def summary_line(tokens: int, steps: int, seconds: float, model: str, device: str) -> str:
    """`N tokens · S steps · T s · model · device`: the line a finished generation ends with."""
    return f"{tokens} tokens · {steps} steps · {seconds:.2f} s · {model} · {device}"


def options_line(options: Mapping[str, Any]) -> str:
    """The sampler options that ran, as `steps 8 · block 8 · temperature 0 · ...` (the model is in the summary)."""
    return " · ".join(f"{label} {_shown(options[key])}" for key, label in OPTION_LABELS.items()
                      if key != "model" and options.get(key) is not None)


def _shown(value: Any) -> Any:
    """A switch as the options' help words it (on, off); any other value as it is."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def stopped_line(step: int, total_steps: int) -> str:
    """What a stopped generation (kernel interrupt, Stop, Ctrl+C) ends with, everywhere."""
    if not total_steps:
        return "stopped before the first step"
    return f"stopped at step {step} of {total_steps}"


def error_line(error_type: str, message: str, retryable: bool) -> str:
    """A failure as users see it everywhere: category, message, and whether a retry may help."""
    retry = "a retry may help" if retryable else "retrying will not help"
    return f"{error_type} error: {message} ({retry})"


# -- decode order -----------------------------------------------------------------------

CHART_HEIGHT = 48
CHART_BAR = 6
#: The thin rule drawn before the first token of each block (block-diffusion and semi-autoregressive runs).
BLOCK_MARK_STYLE = (
    "display: inline-block; width: 0; height: 1.2em; vertical-align: text-bottom;"
    " border-left: 2px solid #5b6478; margin: 0 1px;"
)
#: What the text/plain twin puts before a token that begins a block.
BLOCK_MARK_TEXT = "│"


def step_colour(step: int, last_step: int) -> str:
    """Background of a token committed at `step`: blue for the first steps through to orange for the last."""
    share = (step - 1) / (last_step - 1) if last_step > 1 else 0.0
    return f"hsl({220 - 190 * share:.0f}, 80%, 84%)"


def decode_order_html(context: Context, tokens: Sequence[tuple[str, int | None, float | None]],
                      per_step: Sequence[int], footer: str = "", block_starts: Collection[int] = ()) -> str:
    """The finished text with each token coloured by the step that committed it, and tokens per step as bars.

    `tokens` are (piece, step, confidence) with step None for a position never committed;
    hovering a token shows its step and confidence, hovering a bar its count. A thin rule
    goes before each token whose index is in `block_starts` (a block begins there).
    """
    last = len(per_step)
    starts = set(block_starts)
    body = []
    for index, (piece, step, confidence) in enumerate(tokens):
        if index in starts:
            body.append(f'<span class="yipyap-block-start" style="{BLOCK_MARK_STYLE}" title="a block begins"></span>')
        if step is None:
            body.append(_span(MASK_SHOWN, MASK_STYLE, "still masked"))
            continue
        title = f"step {step}" + (f" · confidence {confidence:.2f}" if confidence is not None else "")
        body.append(_span(piece, f"background: {step_colour(step, last)}; border-radius: 2px;", title))
    return _framed(context, "".join(body), "", "yipyap-canvas yipyap-decode-order") + _chart(per_step) + (
        footer_html(footer) if footer else "")


def _chart(per_step: Sequence[int]) -> str:
    """An inline SVG bar chart: one bar per step, as tall as the tokens it committed, coloured as they are."""
    top = max(per_step, default=0) or 1
    bars = []
    for index, count in enumerate(per_step):
        height = round(CHART_HEIGHT * count / top)
        bars.append(
            f'<rect x="{index * CHART_BAR}" y="{CHART_HEIGHT - height}" width="{CHART_BAR - 1}" height="{height}" '
            f'fill="{step_colour(index + 1, len(per_step))}"><title>step {index + 1}: {count} tokens</title></rect>'
        )
    width = max(len(per_step) * CHART_BAR, 1)
    legend = f"tokens committed per step (steps 1 to {len(per_step)}, early blue to late orange)"
    label = f'<div style="{FOOTER_STYLE}">{legend}</div>'
    svg = (f'<svg class="yipyap-chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{CHART_HEIGHT}" '
           f'style="display: block; margin: 4px 8px; background: #f4f5f8;">{"".join(bars)}</svg>')
    return svg + label


def decode_order_text(tokens: Sequence[tuple[str, int | None, float | None]], per_step: Sequence[int],
                      block_starts: Collection[int] = (), block_length: int | None = None) -> str:
    """The plain-text twin: per step, a bar of its token count and the tokens it committed, each token
    that begins a block (its index in `block_starts`) preceded by `BLOCK_MARK_TEXT`."""
    starts = set(block_starts)
    by_step: dict[int, list[str]] = {}
    for index, (piece, step, _) in enumerate(tokens):
        if step is not None:
            by_step.setdefault(step, []).append(f"{BLOCK_MARK_TEXT} {piece!r}" if index in starts else repr(piece))
    width = len(str(len(per_step)))
    blocks = f" · blocks of {block_length} ({BLOCK_MARK_TEXT} before a block's first token)" if starts else ""
    lines = [f"decode order: {sum(per_step)} tokens in {len(per_step)} steps{blocks}"]
    for step, count in enumerate(per_step, start=1):
        pieces = " ".join(by_step.get(step, []))
        lines.append(f"step {step:>{width}} {'█' * count:<{max(per_step, default=0)}} {count:>3}  {pieces}".rstrip())
    return "\n".join(lines)
