"""Identity of WebP: the image chunks (VP8, VP8L, ALPH, ANIM, ANMF), not EXIF, XMP, ICCP or unknown chunks.

VP8X counts only for an animation (its canvas size places the frames): a
metadata writer turns a simple still WebP into an extended one by adding a
VP8X chunk whose flags announce the EXIF and XMP it adds, and the picture
is the same. The colour profile (ICCP) is left out as in every format.
"""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

from tagger.prepare import hash_io
from tagger.prepare.hash_io import Malformed, file_size, read_exact

__all__ = ["hash_webp"]

_IMAGE = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"})
_ANIMATION_FLAG = 0x02
_TAG = b"tagger-identity/webp\0"


def hash_webp(handle: BinaryIO, digest: hashlib._Hash) -> None:
    """Hash the image chunks in file order; ``Malformed`` when the chunk list does not parse or holds no image."""
    size = file_size(handle)
    handle.seek(12)
    digest.update(_TAG)
    position, found = 12, False
    while position + 8 <= size:
        kind, length = struct.unpack("<4sI", read_exact(handle, 8))
        padded = length + (length & 1)
        if position + 8 + length > size:
            raise Malformed
        if kind == b"VP8X":
            body = read_exact(handle, length)
            if length < 10:
                raise Malformed
            if body[0] & _ANIMATION_FLAG:
                digest.update(kind + bytes((_ANIMATION_FLAG,)) + body[4:10])  # the flag and the canvas size
            handle.seek(padded - length, 1)
        elif kind in _IMAGE:
            digest.update(kind + struct.pack("<I", length))
            hash_io.copy(handle, digest, length)
            handle.seek(padded - length, 1)
            found = True
        else:
            handle.seek(padded, 1)
        position += 8 + padded
    if not found:
        raise Malformed
