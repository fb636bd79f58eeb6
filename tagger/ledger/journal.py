"""Tokens the service answered while the ledger could not record them: a small journal beside the ledger.

The journal (``<ledger>.tokens``) is created, and its space reserved, when a
run takes the ledger's lock, so on a disk that fills up during the run it
can still take the tokens of the uploads in the air. Each token is one JSON
line, written in place into the reserved space and fsync'd before the run
goes on; the next run records them in the ledger before it plans anything,
then zeroes the journal. On a copy-on-write file system (btrfs, ZFS) even a
write in place needs new blocks: there the reserve is not a guarantee, and
a token that could not be written is named in the run's last message.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from typing import Any

__all__ = ["TokenJournal", "RESERVE"]

#: Bytes reserved for tokens: a record is ~200 bytes, so some 300 tokens, and at most 32 POSTs are ever in the air.
RESERVE = 64 * 1024


class TokenJournal:
    """An append-only, preallocated, fsync'd file of token records (dicts)."""

    def __init__(self, path: str, reserve: int = RESERVE) -> None:
        self.path = path
        # Upload threads keep tokens at once: each record must get its own offset (two at one offset lost one).
        self._lock = threading.Lock()
        # O_NOFOLLOW: a link planted where the journal goes is not written through.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            self.records, self._end = _parse(_read_all(self._fd))
            self._reserve(self._end + reserve)
        except BaseException:
            os.close(self._fd)
            raise

    def _reserve(self, size: int) -> None:
        """Make sure the file's first ``size`` bytes have blocks on disk (zeros where nothing is written)."""
        if os.fstat(self._fd).st_size >= size:
            return
        try:
            os.posix_fallocate(self._fd, 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in (
                errno.EOPNOTSUPP,
                errno.EINVAL,
            ):  # no fallocate here: zeros
                raise
            start = os.fstat(self._fd).st_size
            os.pwrite(self._fd, bytes(size - start), start)
        os.fsync(self._fd)

    def keep(self, record: dict[str, Any]) -> None:
        """Write one record and fsync it; raises OSError when even that cannot be done."""
        line = (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        with self._lock:
            written = os.pwrite(self._fd, line, self._end)
            if written != len(line):
                raise OSError(28, "the token journal could not take a whole record")
            os.fsync(self._fd)
            self._end += len(line)
            self.records.append(record)

    def clear(self) -> None:
        """Forget every record (they are in the ledger now): zeroed in place, so the reserve stays."""
        with self._lock:
            if self._end:
                os.pwrite(self._fd, bytes(self._end), 0)
                os.fsync(self._fd)
            self._end = 0
            self.records = []

    def close(self) -> None:
        """Close the file (it stays on disk with its reserve)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)
        if b"\0" in chunk:  # the reserved zeros start: no record lies beyond
            return b"".join(chunks)


def _parse(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The whole records at the start of ``data``, and where the next one goes (a torn last line is dropped)."""
    data = data.split(b"\0", 1)[0]
    end = data.rfind(b"\n") + 1
    records = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, end
