"""How tagger shows things to people: one function for paths, one timestamp format.

Paths are bytes on disk (any name survives a scan); ``display`` makes them
printable anywhere, undecodable bytes shown as ``\\xNN`` so two different
names never look the same. Times are ISO 8601 UTC with a ``Z``, the form
XMP, CSV importers and JSON readers all accept.
"""

from __future__ import annotations

import datetime
import os

__all__ = ["display", "iso", "utc_stamp"]

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def display(path: str | bytes) -> str:
    """``path`` printable anywhere: undecodable bytes shown as \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def iso(ts: float | None) -> str:
    """A Unix time as ISO 8601 UTC with a Z, or an empty string for None."""
    if ts is None:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime(_FORMAT)


def utc_stamp(now: datetime.datetime | None = None) -> str:
    """``now`` (default: this moment) in the same format; a naive datetime is taken as UTC."""
    now = now or datetime.datetime.now(datetime.UTC)
    now = now.replace(tzinfo=datetime.UTC) if now.tzinfo is None else now.astimezone(datetime.UTC)
    return now.strftime(_FORMAT)
