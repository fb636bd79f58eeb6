"""The contact sheet's stylesheet and script, package data inlined into every page (no network, works from file://).

``sheet.js`` builds every card with textContent and properties, never
innerHTML: captions are untrusted text. Only one page of cards is in the DOM
at first, and a thumbnail's data: URI is attached only when its card nears
the viewport.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["css", "js", "PAGE_SIZE"]

#: Cards rendered at a time; more follow on scrolling or "Show more".
PAGE_SIZE = 120


@cache
def _read(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")


def css() -> str:
    """The stylesheet (``--edge`` is the thumbnail edge, set per page)."""
    return _read("sheet.css")


def js() -> str:
    """The script, ``%(page)d`` filled with the cards rendered at a time."""
    return _read("sheet.js") % {"page": PAGE_SIZE}
