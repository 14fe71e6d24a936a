"""The sampler options as command-line arguments, for `%%diffuse` and `yipyap-diffuse` alike.

Made from the families' option declarations (`engine/families/`), so both offer every
option any family reads, with its type, choices and help. A value's range is the
request type's to check, as for every view.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..engine.families import all_options


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--name-with-dashes` argument per sampler option of every family."""
    for option in all_options():
        shown = option.help if option.default == "the model's default" else f"{option.help} (default: {option.default})"
        parser.add_argument(option.flag, dest=option.name, type=str if option.choices else option.type,
                            choices=option.choices or None, metavar=None if option.choices else option.metavar,
                            help=shown.replace("%", "%%"))


def sampler_values(args: argparse.Namespace) -> dict[str, Any]:
    """The sampler options the command line set (the rest left out, so defaults apply)."""
    return {option.name: getattr(args, option.name) for option in all_options()
            if getattr(args, option.name) is not None}
