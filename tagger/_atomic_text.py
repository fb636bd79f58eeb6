"""Atomic text output shared by the exports and the contact sheet, and their error."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import IO, BinaryIO

from tagger._atomic import atomic_write

from tagger.errors import TaggerError

__all__ = ["ExportError", "atomic_text"]


class ExportError(TaggerError):
    """An export could not be written: unknown profile or format, or an unwritable destination."""

    # A TaggerError, so the CLI shows the sentence and exits 2 (fix the flag or the path).


def atomic_text(dest: str, write: Callable[[IO[str]], int]) -> int:
    """Run ``write`` on a UTF-8 text file that atomically replaces ``dest``."""

    def text(raw: BinaryIO) -> int:
        # errors="replace": a lone surrogate from an undecodable name becomes "?", not a crash.
        out = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        try:
            count = write(out)
            out.flush()
        finally:
            out.detach()  # atomic_write closes the file itself
        return count

    try:
        # An export is meant to be shared: 0o644 unless the file it replaces had other bits.
        mode = None if os.path.exists(dest) else 0o644
        return atomic_write(os.path.abspath(dest), text, mode=mode)
    except OSError as exc:
        raise ExportError(f"cannot write {dest}: {exc.strerror or exc}; check the folder exists and is writable") from exc
