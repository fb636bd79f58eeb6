"""Atomic file replacement: a temporary file beside the target, fsync, rename, fsync the folder.

The one atomic-write helper of the package: sidecars, exports and the
contact sheet all go through ``atomic_write`` (``atomic_text`` for text).
A crash leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import IO, BinaryIO, TypeVar

from tagger.errors import ExportError

__all__ = ["atomic_write", "atomic_text", "fsync_dir", "remove_leftovers", "TargetChanged"]

T = TypeVar("T")


class TargetChanged(Exception):
    """``atomic_write``'s precondition failed: the target changed meanwhile; nothing was replaced."""


def fsync_dir(folder: str) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    with suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(folder or os.curdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temporary_names(path: str) -> tuple[str, re.Pattern[str]]:
    base = os.path.basename(path)
    return f".{base}.{secrets.token_hex(6)}.tmp", re.compile(re.escape(f".{base}.") + r"[0-9a-f]{12}\.tmp")


def remove_leftovers(path: str, names: Iterable[str] | None = None) -> int:
    """Delete temporary files a killed writer of ``path`` left beside it; returns how many.

    ``names`` is the folder's listing when the caller has one (a sidecar
    writer lists each folder once per run); otherwise the folder is scanned.
    """
    folder = os.path.dirname(path) or os.curdir
    _, pattern = _temporary_names(path)
    removed = 0
    try:
        listing = list(names) if names is not None else os.listdir(folder)
    except OSError:
        return 0
    for name in listing:
        if pattern.fullmatch(name):
            with suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def _chown(path: str, owner: tuple[int, int]) -> None:
    uid, gid = owner
    try:
        os.chown(path, uid, gid)
    except PermissionError:
        # Not root: the group alone may still be ours to give (a member of it); else keep ours.
        with suppress(PermissionError):
            os.chown(path, -1, gid)


def atomic_write(
    path: str,
    write: Callable[[BinaryIO], T],
    *,
    mode: int | None = None,
    listing: Iterable[str] | None = None,
    owner: tuple[int, int] | None = None,
    precondition: Callable[[], bool] | None = None,
) -> T:
    """Replace ``path`` with what ``write`` writes to a binary file; returns its result.

    ``mode`` sets the new file's permission bits; None keeps the existing
    file's, or gives a new file the usual 0o666 less the umask. ``owner``
    (uid, gid) is given to the new file as far as the process may (all of it
    as root). ``precondition`` runs just before the rename; when it returns
    False nothing is replaced and TargetChanged is raised (the window left is
    the rename itself). OSError propagates after the temporary file is
    removed. A SIGKILL cannot run that clean-up, so temporary files an
    earlier writer of ``path`` left behind are removed first (``listing``:
    the folder's names, if known).
    """
    folder = os.path.dirname(path) or os.curdir
    if mode is None:
        with suppress(OSError):
            mode = os.stat(path).st_mode & 0o7777
    name, _ = _temporary_names(path)
    remove_leftovers(path, listing)
    tmp = os.path.join(folder, name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        if owner is not None:
            _chown(tmp, owner)
        if mode is not None:
            os.chmod(tmp, mode)  # after chown, which may clear set-id bits
        if precondition is not None and not precondition():
            raise TargetChanged(path)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
    return result


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
        raise ExportError(
            f"cannot write {dest}: {exc.strerror or exc}; check the folder exists and is writable"
        ) from exc
