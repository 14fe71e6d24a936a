"""The sampler options as command-line arguments, for `%%diffuse` and `yipyap-diffuse` alike.

Made from the families' option declarations (`service.schemas.SAMPLER_OPTIONS`), so both
offer every option any family reads, with its type, choices and help. A value's range is the
request type's to check, as for every view.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..service.schemas import SAMPLER_OPTIONS


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--name-with-dashes` argument per sampler option of every family."""
    for option in SAMPLER_OPTIONS:
        shown = option.help if option.default == "the model's default" else f"{option.help} (default: {option.default})"
        kind: Any = str if option.choices else _on_off if option.type is bool else option.type
        parser.add_argument(option.flag, dest=option.name, type=kind, choices=option.choices or None,
                            metavar="on|off" if option.type is bool else None if option.choices else option.metavar,
                            help=shown.replace("%", "%%"))


def _on_off(text: str) -> bool:
    """A yes/no option's value: on/off, true/false, yes/no or 1/0."""
    value = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")
    return value[text.lower()]


def sampler_values(args: argparse.Namespace) -> dict[str, Any]:
    """The sampler options the command line set (the rest left out, so defaults apply)."""
    return {option.name: getattr(args, option.name) for option in SAMPLER_OPTIONS
            if getattr(args, option.name) is not None}
