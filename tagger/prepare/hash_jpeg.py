"""Identity of JPEG: every segment except APPn (EXIF, XMP, ICC, Photoshop/IPTC...) and COM, then the scans up to EOI.

This is the rule tagger has always used (scheme 1 and 2 agree on it), so a
JPEG's identity carries over an upgrade without the file being read again.
"""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

from tagger.prepare import hash_io
from tagger.prepare.hash_io import Malformed, read_exact

__all__ = ["hash_jpeg"]

# Markers that stand alone, without a length: TEM, RSTn, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})


def hash_jpeg(handle: BinaryIO, digest: hashlib._Hash, *, scans: bool = True) -> None:
    """Hash from SOI; with ``scans`` False stop after the first scan header (a cheap check that the segments parse)."""
    digest.update(read_exact(handle, 2))
    while True:
        if read_exact(handle, 1) != b"\xff":
            raise Malformed
        marker = 0xFF
        while marker == 0xFF:  # fill bytes may pad before a marker
            marker = read_exact(handle, 1)[0]
        if marker == 0xD9:
            digest.update(b"\xff\xd9")
            return
        if marker == 0x00:
            raise Malformed
        if marker in _STANDALONE:
            digest.update(bytes((0xFF, marker)))
            continue
        length_bytes = read_exact(handle, 2)
        (length,) = struct.unpack(">H", length_bytes)
        if length < 2:
            raise Malformed
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            handle.seek(length - 2, 1)
            continue
        digest.update(bytes((0xFF, marker)) + length_bytes)
        hash_io.copy(handle, digest, length - 2)
        if marker == 0xDA:
            if scans:
                _hash_scans(handle, digest)
            return


def _hash_scans(handle: BinaryIO, digest: hashlib._Hash) -> None:
    """Hash from the first scan to EOI inclusive; trailers after EOI are not the picture."""
    pending_ff = False
    while True:
        data = handle.read(hash_io.CHUNK)
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
