"""Content hash for file identity: the same picture keeps its hash when only its metadata changes.

JPEG: every segment except APPn (EXIF, XMP, ICC, Photoshop/IPTC...) and COM,
then the entropy-coded data up to EOI. PNG: every chunk except the text, EXIF
and time chunks, up to IEND. Any other format, or a file whose structure does
not parse, hashes whole. Files are streamed, never read whole.
"""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

__all__ = ["content_hash"]

_CHUNK = 1 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_SKIPPED = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})
# Markers that stand alone, without a length: TEM, RSTn, SOI, EOI.
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


class _Malformed(Exception):
    """The structure does not parse; hash the whole file instead."""


def content_hash(path: str) -> str:
    """Hex SHA-256 of the image data of ``path``, ignoring metadata; OSError propagates."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        handle.seek(0)
        digest = hashlib.sha256()
        try:
            if head[:2] == b"\xff\xd8":
                _hash_jpeg(handle, digest)
                return digest.hexdigest()
            if head == _PNG_SIGNATURE:
                _hash_png(handle, digest)
                return digest.hexdigest()
        except _Malformed:
            handle.seek(0)
            digest = hashlib.sha256()
        _copy(handle, digest, None)
        return digest.hexdigest()


def _read_exact(handle: BinaryIO, count: int) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise _Malformed
    return data


def _copy(handle: BinaryIO, digest: "hashlib._Hash", count: int | None) -> None:
    """Hash ``count`` bytes (all that is left when None) in bounded chunks."""
    while count is None or count > 0:
        data = handle.read(_CHUNK if count is None else min(_CHUNK, count))
        if not data:
            if count is not None:
                raise _Malformed
            return
        digest.update(data)
        if count is not None:
            count -= len(data)


def _hash_jpeg(handle: BinaryIO, digest: "hashlib._Hash") -> None:
    digest.update(_read_exact(handle, 2))
    while True:
        if _read_exact(handle, 1) != b"\xff":
            raise _Malformed
        marker = 0xFF
        while marker == 0xFF:  # fill bytes may pad before a marker
            marker = _read_exact(handle, 1)[0]
        if marker == 0xD9:
            digest.update(b"\xff\xd9")
            return
        if marker == 0x00:
            raise _Malformed
        if marker in _JPEG_STANDALONE:
            digest.update(bytes((0xFF, marker)))
            continue
        length_bytes = _read_exact(handle, 2)
        (length,) = struct.unpack(">H", length_bytes)
        if length < 2:
            raise _Malformed
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            handle.seek(length - 2, 1)
            continue
        digest.update(bytes((0xFF, marker)) + length_bytes)
        _copy(handle, digest, length - 2)
        if marker == 0xDA:
            _hash_scans(handle, digest)
            return


def _hash_scans(handle: BinaryIO, digest: "hashlib._Hash") -> None:
    """Hash from the first scan to EOI inclusive; trailers after EOI are not the picture."""
    pending_ff = False
    while True:
        data = handle.read(_CHUNK)
        if not data:
            return  # a truncated file is still hashed as far as it goes
        if pending_ff and data[0] == 0xD9:
            digest.update(data[:1])
            return
        end = data.find(b"\xff\xd9")
        if end >= 0:
            digest.update(data[: end + 2])
            return
        digest.update(data)
        pending_ff = data[-1] == 0xFF


def _hash_png(handle: BinaryIO, digest: "hashlib._Hash") -> None:
    digest.update(_read_exact(handle, 8))
    while True:
        header = _read_exact(handle, 8)
        (length,) = struct.unpack(">I", header[:4])
        kind = header[4:]
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise _Malformed
        if kind in _PNG_SKIPPED:
            handle.seek(length + 4, 1)
            continue
        digest.update(header)
        _copy(handle, digest, length + 4)  # data and CRC
        if kind == b"IEND":
            return
