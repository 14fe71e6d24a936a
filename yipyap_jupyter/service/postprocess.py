"""Clean-ups applied to a finished generation's text, in the service only.

`auto_trim` drops trailing whitespace, nothing else: the text still continues the
prompt exactly as the last canvas showed (the whitespace that joins it to the prompt
is kept). `fix_punctuation` repairs the spacing that prose models' tokenizers leave
around punctuation; the plan never applies it to code models, and even in prose it
leaves fenced code blocks and anything that is not a sentence's punctuation alone
(`from . import x` stays as it is).
"""

from __future__ import annotations

import re

#: Spaces between a word and a comma / semicolon / colon / ! / ? that ends a clause ("word ," -> "word,").
_SPACE_BEFORE_MARK = re.compile(r"(?<=\w) +(?=[,;:!?](?:\s|$))")
#: Spaces between a word and a full stop that ends a sentence: at the end of the line or before a capital.
_SPACE_BEFORE_STOP = re.compile(r"(?<=\w) +(?=\.(?:$|\s+[A-Z\"']))")
#: Runs of spaces inside a line, after its first non-space character.
_INNER_SPACES = re.compile(r"(?<=\S) {2,}(?=\S)")
_FENCE = "```"


def auto_trim(text: str) -> str:
    """`text` without trailing whitespace."""
    return text.rstrip()


def fix_punctuation(text: str) -> str:
    """Remove spaces before sentence punctuation and collapse doubled spaces, outside code fences."""
    lines = []
    in_code = False
    for line in text.split("\n"):
        if line.lstrip().startswith(_FENCE):
            in_code = not in_code
        elif not in_code:
            line = _SPACE_BEFORE_STOP.sub("", _SPACE_BEFORE_MARK.sub("", line))
            line = _INNER_SPACES.sub(" ", line)
        lines.append(line)
    return "\n".join(lines)


def clean(text: str, *, trim: bool, punctuation: bool) -> str:
    """The `complete` event's text."""
    if punctuation:
        text = fix_punctuation(text)
    return auto_trim(text) if trim else text
