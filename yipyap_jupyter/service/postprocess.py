"""Clean-ups applied to a finished generation's text, in the service only.

`auto_trim` drops what a generation cut off mid-thought; `fix_punctuation` repairs
the spacing that tokenizers leave around punctuation. Both are conservative: line
indentation is never touched (the shipped model writes Python).
"""

from __future__ import annotations

import re

#: A sentence end: terminal punctuation, optional closing quotes/brackets, then whitespace.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)")
#: Text that already ends like a finished sentence or statement.
_ENDS_COMPLETE = re.compile(r"[.!?;:][\"')\]}]*$")
#: Spaces between a word and the punctuation that follows it ("word ," -> "word,").
_SPACE_BEFORE_PUNCT = re.compile(r"(?<=[^\s]) +(?=[,.;:!?](?:\s|$))")
#: Runs of spaces inside a line, after its first non-space character.
_INNER_SPACES = re.compile(r"(?<=\S) {2,}(?=\S)")


def auto_trim(text: str, finished: bool = False) -> str:
    """Strip whitespace and, unless the model `finished` on its own, drop a trailing fragment.

    The fragment is whatever follows the later of the last line break and the last
    sentence end; when nothing would remain, the stripped text is kept whole.
    """
    trimmed = text.strip()
    if finished or not trimmed or _ENDS_COMPLETE.search(trimmed):
        return trimmed
    cut = trimmed.rfind("\n")
    for match in _SENTENCE_END.finditer(trimmed):
        cut = max(cut, match.end())
    kept = trimmed[:cut].rstrip() if cut > 0 else ""
    return kept or trimmed


def fix_punctuation(text: str) -> str:
    """Remove spaces before `, . ; : ! ?` and collapse doubled spaces inside lines."""
    lines = []
    for line in text.split("\n"):
        line = _SPACE_BEFORE_PUNCT.sub("", line)
        lines.append(_INNER_SPACES.sub(" ", line))
    return "\n".join(lines)


def clean(text: str, *, trim: bool, punctuation: bool, finished: bool) -> str:
    """The `complete` event's text: punctuation first, so trimming sees the repaired sentences."""
    if punctuation:
        text = fix_punctuation(text)
    if trim:
        text = auto_trim(text, finished=finished)
    return text
