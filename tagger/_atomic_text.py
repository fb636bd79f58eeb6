"""Atomic text output shared by the exports and the contact sheet, and their error."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO

from tagger.errors import TaggerError

__all__ = ["ExportError", "atomic_text"]


class ExportError(TaggerError):
    """An export could not be written: unknown profile or format, or an unwritable destination."""

    # A TaggerError, so the CLI shows the sentence and exits 2 (fix the flag or the path).


def atomic_text(dest: str, write: Callable[[IO[str]], int]) -> int:
    """Run ``write`` on a temporary file beside ``dest``, fsync it and move it into place."""
    directory = os.path.dirname(os.path.abspath(dest))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(dest) + ".", suffix=".tmp")
    except OSError as exc:
        raise ExportError(f"cannot write {dest}: {exc.strerror or exc}; check the folder exists and is writable") from exc
    try:
        # errors="replace": a lone surrogate from an undecodable name becomes "?", not a crash.
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace", newline="") as out:
            # mkstemp makes the file private; an export is meant to be shared like its predecessor.
            try:
                mode = os.stat(dest).st_mode & 0o777
            except OSError:
                mode = 0o644
            os.fchmod(out.fileno(), mode)
            count = write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {dest}: {exc.strerror or exc}") from exc
        raise
    return count
