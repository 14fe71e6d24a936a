"""What every panel shares: a root widget, a short text form, and the client it works through.

Panels compose standard widgets rather than subclass them (a `Box` subclass
risks trait-name clashes); displaying a panel displays its root widget, and
its `text/plain` form is one stable line for terminals and nbval.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ipywidgets as widgets

    from ..client import DiffusionClient


class Panel:
    """A titled group of widgets over a `DiffusionClient`."""

    title = "panel"
    widget: widgets.Widget

    def __init__(self, client: DiffusionClient | None = None) -> None:
        if client is None:
            from ..client import DiffusionClient

            client = DiffusionClient()
        self.client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.title}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle
