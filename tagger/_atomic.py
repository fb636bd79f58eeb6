"""Atomic file replacement: a temporary file beside the target, fsync, rename, fsync the folder.

A crash leaves either the old file or the new one, never half of either.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from contextlib import suppress
from typing import BinaryIO, TypeVar

__all__ = ["atomic_write", "fsync_dir"]

T = TypeVar("T")


def fsync_dir(folder: str) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    with suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(folder or os.curdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, write: Callable[[BinaryIO], T], *, mode: int | None = None) -> T:
    """Replace ``path`` with what ``write`` writes to a binary file; returns its result.

    ``mode`` sets the new file's permission bits; None keeps the existing
    file's, or gives a new file the usual 0o666 less the umask. OSError
    propagates after the temporary file is removed.
    """
    folder = os.path.dirname(path) or os.curdir
    if mode is None:
        with suppress(OSError):
            mode = os.stat(path).st_mode & 0o7777
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
    return result
