"""How tagger shows things to people: one function for paths, one timestamp format, one for counts.

Paths are bytes on disk (any name survives a scan); ``display`` makes them
printable anywhere, and ``undisplay`` gives the bytes back: the one
spelling every output uses (messages, CSV, JSONL, the contact sheet,
``show``, ``status``). A name that is valid UTF-8 is shown as it is. A name
that is not has each byte that does not decode written ``\\xNN`` (two
lower-case hex digits) and each backslash doubled, so that ``caf\\xe9.jpg``
names the Latin-1 file ``caf\xe9.jpg`` (bytes ``63 61 66 e9 ...``). A valid
name that itself contains ``\\\\`` or ``\\x`` followed by hex digits 80-ff is
spelled the escaped way too, so no two names ever share a spelling. Times
are ISO 8601 UTC with a ``Z``, the form XMP, CSV importers and JSON readers
all accept.
"""

from __future__ import annotations

import datetime
import os
import re

__all__ = ["display", "undisplay", "iso", "utc_stamp", "count"]

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# What an escaped spelling contains and a verbatim one never does.
_ESCAPE = re.compile(r"\\\\|\\x[89a-f][0-9a-f]")
_TOKEN = re.compile(r"\\\\|\\x([89a-f][0-9a-f])")


def display(path: str | bytes) -> str:
    """``path`` printable anywhere, in the one reversible spelling (see the module docstring)."""
    raw = os.fsencode(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        if not _ESCAPE.search(text):
            return text
    # Undecodable bytes are 0x80-0xff (UTF-8 never fails on ASCII), so \x80..\xff is all the escape needs.
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def undisplay(text: str) -> bytes:
    """The name ``display`` spelled as ``text``, as bytes (its inverse)."""
    if not _ESCAPE.search(text):
        return os.fsencode(text)

    def byte(m: re.Match[str]) -> str:
        return "\\" if m.group(1) is None else chr(0xDC00 + int(m.group(1), 16))  # a surrogate-escaped byte

    return os.fsencode(_TOKEN.sub(byte, text))


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


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 row``, ``2 rows``: plain English (``plural`` when it is not ``noun`` + "s")."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"
