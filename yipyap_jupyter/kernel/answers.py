"""Small display objects for `%diffuse` answers: model tables, model state, settings, notices.

Each renders as an HTML table in a notebook and as aligned text in a terminal
(and for nbval, which compares both).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..service.schemas import ModelInfo
    from ..settings import UserSettings

TABLE_STYLE = "border-collapse: collapse; font-size: 12px;"
CELL_STYLE = "padding: 2px 10px; text-align: left;"


def human_size(size: int | None) -> str:
    """Bytes as B / kB / MB / GB (decimal units, as the hub shows them)."""
    if not size:
        return "-"
    units = ("B", "kB", "MB", "GB", "TB")
    value, unit = float(size), 0
    while value >= 1000 and unit < len(units) - 1:
        value, unit = value / 1000, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {units[unit]}"


def human_count(count: int | None) -> str:
    """Parameter counts as 3.2M / 8.0B."""
    if not count:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> tuple[str, str]:
    """(html, text) of one table."""
    head = "".join(f'<th style="{CELL_STYLE}">{html.escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="{CELL_STYLE}">{html.escape(c)}</td>' for c in row) + "</tr>" for row in rows
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]]
    return f'<table style="{TABLE_STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>', "\n".join(lines)


class ModelTable:
    """`%diffuse models`: id, family, cached, loaded, device, size."""

    HEADER = ("id", "family", "cached", "loaded", "device", "size")

    def __init__(self, models: Sequence[ModelInfo]) -> None:
        self.models = list(models)

    def rows(self) -> list[tuple[str, ...]]:
        yes_no = {True: "yes", False: "no"}
        return [
            (m.id, m.family, yes_no[m.cached], yes_no[m.loaded], m.device or "-", human_size(m.size_on_disk))
            for m in self.models
        ]

    def _repr_html_(self) -> str:
        return _table(self.HEADER, self.rows())[0]

    def __repr__(self) -> str:
        return _table(self.HEADER, self.rows())[1]


def describe_model(info: ModelInfo | None) -> str:
    """One line: which model is loaded, where, and whether it fell back to CPU."""
    if info is None:
        return "No model loaded."
    line = f"{info.id} ({info.name}) on {info.device or '?'}"
    extras = [info.dtype, f"{human_count(info.parameters)} parameters" if info.parameters else None]
    line += "".join(f", {extra}" for extra in extras if extra)
    if info.fallback:
        line += f" — {info.fallback}"
    return line


class ModelView:
    """`%diffuse load` / `current`: the loaded model in one line, and which backend holds it."""

    def __init__(self, info: ModelInfo | None, backend: str) -> None:
        self.info = info
        self.backend = backend

    def __repr__(self) -> str:
        return f"{describe_model(self.info)}  [{self.backend} backend]"

    def _repr_html_(self) -> str:
        backend = f"<small>[{html.escape(self.backend)} backend]</small>"
        return f"<div>{html.escape(describe_model(self.info))} {backend}</div>"


class SettingsView:
    """`%diffuse settings`: every setting and its value."""

    def __init__(self, settings: UserSettings, saved: bool = False) -> None:
        self.settings = settings
        self.saved = saved

    def rows(self) -> list[tuple[str, str]]:
        return [(key, str(value)) for key, value in self.settings.model_dump().items()]

    def _repr_html_(self) -> str:
        table = _table(("setting", "value"), self.rows())[0]
        return table + ("<div><small>saved</small></div>" if self.saved else "")

    def __repr__(self) -> str:
        return _table(("setting", "value"), self.rows())[1] + ("\nsaved" if self.saved else "")


class Notice:
    """A one-line answer such as "Unloaded tiny."."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        return f"<div>{html.escape(self.message)}</div>"
