"""Identity of PNG: every chunk up to IEND except text, EXIF, time and (from scheme 2) the ICC profile."""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

from tagger.prepare import hash_io
from tagger.prepare.hash_io import Malformed, read_exact

__all__ = ["hash_png", "SKIPPED_V1", "SKIPPED"]

#: What scheme 1 skipped.
SKIPPED_V1 = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})
#: Scheme 2 also skips iCCP: a colour profile is not identity in any format (JPEG's APP2 never was).
SKIPPED = SKIPPED_V1 | {b"iCCP"}


def hash_png(handle: BinaryIO, digest: hashlib._Hash, skipped: frozenset[bytes] = SKIPPED) -> None:
    """Hash the chunks that are not ``skipped``, from the signature to IEND."""
    digest.update(read_exact(handle, 8))
    while True:
        header = read_exact(handle, 8)
        (length,) = struct.unpack(">I", header[:4])
        kind = header[4:]
        if length > 0x7FFFFFFF or not kind.isalpha():
            raise Malformed
        if kind in skipped:
            handle.seek(length + 4, 1)
            continue
        digest.update(header)
        hash_io.copy(handle, digest, length + 4)  # data and CRC
        if kind == b"IEND":
            return
