"""Bounded reads shared by the content hashers: exact reads, chunked copies into a digest."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

__all__ = ["Malformed", "CHUNK", "read_exact", "copy", "copy_at", "file_size"]

#: The largest read a hasher makes; files are streamed, never read whole.
CHUNK = 1 << 20


class Malformed(Exception):
    """The structure does not parse; the caller falls back to another way of hashing."""


def read_exact(handle: BinaryIO, count: int) -> bytes:
    """Exactly ``count`` bytes, or ``Malformed``."""
    data = handle.read(count)
    if len(data) != count:
        raise Malformed
    return data


def copy(handle: BinaryIO, digest: hashlib._Hash, count: int | None) -> None:
    """Hash ``count`` bytes (all that is left when None) in bounded chunks."""
    while count is None or count > 0:
        data = handle.read(CHUNK if count is None else min(CHUNK, count))
        if not data:
            if count is not None:
                raise Malformed
            return
        digest.update(data)
        if count is not None:
            count -= len(data)


def copy_at(handle: BinaryIO, digest: hashlib._Hash, offset: int, count: int, size: int) -> None:
    """Hash ``count`` bytes at ``offset``; ``Malformed`` when they lie beyond the file's ``size``."""
    if offset < 0 or count < 0 or offset + count > size:
        raise Malformed
    handle.seek(offset)
    copy(handle, digest, count)


def file_size(handle: BinaryIO) -> int:
    """The size of an open file, leaving its position where it was."""
    here = handle.tell()
    end = handle.seek(0, 2)
    handle.seek(here)
    return end
