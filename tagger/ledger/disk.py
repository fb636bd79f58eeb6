"""Why the ledger could not be written (a full disk, a read-only file system, a permission), in the user's words.

SQLite reports a full disk as SQLITE_FULL, but a read-only mount or a
folder the user may not write shows as READONLY, CANTOPEN or IOERR
depending on which file (the database, its -wal or -shm) it was opening;
for those the folder itself is asked (``statvfs``, ``access``) what is wrong.
"""

from __future__ import annotations

import errno
import os
import sqlite3

from tagger.errors import LedgerWriteError

__all__ = ["write_error", "disk_trouble", "probe"]

_FULL = {errno.ENOSPC, errno.EDQUOT}
_PERMISSION = {errno.EACCES, errno.EPERM}
# Free space below this is a full disk for a ledger: one transaction appends a few pages to the WAL.
_NEARLY_FULL = 64 * 1024


def _probe(path: str) -> str | None:
    """What the folder holding ``path`` says: "read-only", "full", "permission" or None (nothing visible)."""
    folder = os.path.dirname(path) or "."
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return "read-only"
    if st.f_bavail * st.f_frsize < _NEARLY_FULL:
        return "full"
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        return "permission"
    return None


def probe(path: str) -> str | None:
    """Whether the ledger at ``path`` could be written, before anything is sent: the kind of trouble, or None."""
    return _probe(path)


def disk_trouble(exc: BaseException, path: str) -> str | None:
    """The kind of write failure ``exc`` is ("full", "read-only", "permission", "io"), or None when it is none."""
    if isinstance(exc, OSError):
        if exc.errno in _FULL:
            return "full"
        if exc.errno == errno.EROFS:
            return "read-only"
        if exc.errno in _PERMISSION:
            return _probe(path) or "permission"
        if exc.errno == errno.EIO:
            return _probe(path) or "io"
        return None
    if not isinstance(exc, sqlite3.Error):
        return None
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL":
        return "full"
    if name.startswith("SQLITE_READONLY"):
        return _probe(path) or "read-only"
    if name.startswith(("SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        return _probe(path) or "permission"
    if name.startswith("SQLITE_IOERR"):
        return _probe(path) or "io"
    return None


def write_error(kind: str, path: str, kept: int = 0, journal: str | None = None) -> LedgerWriteError:
    """The error a run ends with when the ledger at ``path`` cannot be written; ``kept``: tokens in the journal."""
    if kind == "full":
        text = f"the disk holding the ledger {path} is full: nothing more was sent"
    elif kind == "read-only":
        text = (
            f"the ledger {path} is on a read-only file system (or is read-only): tagger cannot record what it "
            "sends, so it sent nothing more; make it writable, or pass --ledger with a writable place"
        )
    elif kind == "permission":
        text = (
            f"no permission to write the ledger {path} or its folder: tagger cannot record what it sends, so it "
            "sent nothing more; run tagger as the user who owns the ledger, or fix the permissions"
        )
    else:
        text = f"the disk holding the ledger {path} failed to write (I/O error): nothing more was sent"
    if kept:
        text += (
            f"; {kept} {'token' if kept == 1 else 'tokens'} the service had answered are kept in {journal}"
            " and recorded by the next run (nothing is paid twice)"
        )
    if kind in ("full", "io"):
        text += "; free some space (or fix the disk), then run the same command again to resume"
    return LedgerWriteError(text, kind)
