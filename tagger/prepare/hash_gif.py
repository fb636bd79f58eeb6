"""Identity of GIF: screen descriptor, colour tables, graphic control, plain text and image blocks.

Left out: the version (a writer adding XMP turns GIF87a into GIF89a),
comment extensions and every application extension. Those hold XMP, ICC
and the NETSCAPE loop count; tagger reads the first frame only, so the
loop count cannot change what it sends.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from tagger.prepare.hash_io import Malformed, read_exact

__all__ = ["hash_gif"]

_TAG = b"tagger-identity/gif\0"
_KEPT_EXTENSIONS = frozenset({0xF9, 0x01})  # graphic control, plain text: both change what is drawn


def _table(flags: int) -> int:
    return 3 * (2 << (flags & 0x07)) if flags & 0x80 else 0


def _sub_blocks(handle: BinaryIO, digest: hashlib._Hash | None) -> None:
    while True:
        (length,) = read_exact(handle, 1)
        if digest is not None:
            digest.update(bytes((length,)))
        if length == 0:
            return
        data = read_exact(handle, length)
        if digest is not None:
            digest.update(data)


def hash_gif(handle: BinaryIO, digest: hashlib._Hash) -> None:
    """Hash the blocks that draw the picture, up to the trailer; ``Malformed`` when they do not parse."""
    handle.seek(6)
    screen = read_exact(handle, 7)
    digest.update(_TAG + screen + read_exact(handle, _table(screen[4])))
    frames = 0
    while True:
        (introducer,) = read_exact(handle, 1)
        if introducer == 0x3B:
            break
        if introducer == 0x2C:
            descriptor = read_exact(handle, 9)
            digest.update(b"\x2c" + descriptor + read_exact(handle, _table(descriptor[8])) + read_exact(handle, 1))
            _sub_blocks(handle, digest)
            frames += 1
        elif introducer == 0x21:
            (label,) = read_exact(handle, 1)
            kept = label in _KEPT_EXTENSIONS
            if kept:
                digest.update(bytes((0x21, label)))
            _sub_blocks(handle, digest if kept else None)
        else:
            if frames:
                break  # garbage after the last frame: decoders stop here too
            raise Malformed
    if not frames:
        raise Malformed
