"""Content identity: the same picture keeps its hash when only its metadata changes, in every format tagger reads.

Scheme 2 (``SCHEME``), by the file's first bytes:

- JPEG: every segment except APPn (EXIF, XMP, ICC, IPTC...) and COM, then the scans to EOI (``hash_jpeg``).
- PNG: every chunk up to IEND except text, EXIF, time and iCCP (``hash_png``).
- TIFF and TIFF-based RAW (DNG, CR2, NEF, ARW, ORF, RW2, PEF), Fujifilm RAF: the strips, tiles and JPEG
  blocks of every image directory and the tags that decode them (``hash_tiff``).
- WebP: the image chunks (``hash_webp``). GIF: the blocks that draw (``hash_gif``).
- HEIC, HEIF, AVIF: the coded image items and their properties; CR3: its media data (``hash_bmff``).
- BMP: the whole file. It has no metadata blocks a tool edits: header and pixels are the image.
- Anything else, or a file whose structure does not parse: the decoded pixels (``hash_pixels``), so a
  metadata edit still costs nothing; and only if no installed decoder reads it, the whole file.

The same rules everywhere: metadata, the colour profile and the orientation
flag are not the picture (JPEG's rule has always been so). Files are
streamed or read with bounded memory.

Scheme 1 (``legacy_hash``) is how tagger hashed before: JPEG as now, PNG
keeping iCCP, everything else whole. The planner uses it once, to carry
captions of an older ledger over to scheme 2 without a submission.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from typing import BinaryIO

from tagger.prepare import hash_io
from tagger.prepare.formats import SNIFF_BYTES, is_jpeg, is_png, structure
from tagger.prepare.hash_bmff import hash_bmff
from tagger.prepare.hash_gif import hash_gif
from tagger.prepare.hash_io import Malformed
from tagger.prepare.hash_jpeg import hash_jpeg
from tagger.prepare.hash_pixels import pixel_hash
from tagger.prepare.hash_png import SKIPPED_V1, hash_png
from tagger.prepare.hash_tiff import hash_raf, hash_tiff
from tagger.prepare.hash_webp import hash_webp

__all__ = ["SCHEME", "content_hash", "content_hash_of", "legacy_hash", "carries_over"]

log = logging.getLogger("tagger.prepare.hashing")

#: The identity scheme ``content_hash`` computes; the ledger records it beside each hash (m007).
SCHEME = 2

Hasher = Callable[[BinaryIO, "hashlib._Hash"], None]
#: ``formats.structure``'s answer -> the hasher that reads it ("bmp" has none: the whole file is the picture).
_HASHERS: dict[str, Hasher] = {
    "jpeg": hash_jpeg,
    "png": hash_png,
    "raf": hash_raf,
    "tiff": hash_tiff,
    "webp": hash_webp,
    "gif": hash_gif,
    "bmff": hash_bmff,
}


def content_hash(path: str) -> str:
    """Hex SHA-256 identity of the picture in ``path`` (scheme 2), ignoring metadata; OSError propagates."""
    with open(path, "rb") as handle:
        return _identity(handle, path, path)


def content_hash_of(data: bytes, name: str) -> str:
    """``content_hash`` of a file already read into memory (``name`` gives its extension): the same identity."""
    return _identity(io.BytesIO(data), name, lambda: io.BytesIO(data))


def _identity(handle: BinaryIO, name: str, source: str | Callable[[], BinaryIO]) -> str:
    """The scheme-2 hash of an open file; ``source`` reopens it for the decoders (a path, or a new buffer)."""
    kind = structure(handle.read(SNIFF_BYTES))
    hasher = _HASHERS.get(kind) if kind else None
    if hasher is not None:
        handle.seek(0)
        digest = hashlib.sha256()
        try:
            hasher(handle, digest)
            return digest.hexdigest()
        except Malformed:
            pass
        pixels = pixel_hash(name, source)
        if pixels is not None:
            return pixels
        log.info("%s: neither its structure nor its pixels could be read; its identity is the whole file", name)
    elif kind != "bmp" and (pixels := pixel_hash(name, source)) is not None:  # BMP: header and pixels are the image
        return pixels
    handle.seek(0)
    return _whole(handle)


def _whole(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    hash_io.copy(handle, digest, None)
    return digest.hexdigest()


def legacy_hash(path: str) -> str:
    """The scheme-1 hash tagger computed before m007 (JPEG and PNG structure, anything else whole)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        handle.seek(0)
        digest = hashlib.sha256()
        try:
            if is_jpeg(head):
                hash_jpeg(handle, digest)
                return digest.hexdigest()
            if is_png(head):
                hash_png(handle, digest, SKIPPED_V1)
                return digest.hexdigest()
        except Malformed:
            handle.seek(0)
        return _whole(handle)


def carries_over(path: str) -> bool:
    """Whether ``path``'s scheme-1 hash is its scheme-2 hash, told from its segment headers alone.

    True for a JPEG whose segments parse up to the first scan: both schemes
    hash it the same way. Everything else must be hashed again.
    """
    with open(path, "rb") as handle:
        if not is_jpeg(handle.read(2)):
            return False
        handle.seek(0)
        try:
            hash_jpeg(handle, hashlib.sha256(), scans=False)
        except Malformed:
            return False
        return True
