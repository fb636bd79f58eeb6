"""The fallback identity: a hash of the decoded pixels, for files whose structure the hashers cannot read.

Camera RAW decodes with LibRaw (rawpy) to its sensor data, which does not
depend on demosaicing or LibRaw's rendering; anything else with Pillow
(and pillow-heif when installed), first frame only. Returns None when no
installed decoder reads the file; the caller then hashes the whole file.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import warnings
from collections.abc import Callable
from typing import BinaryIO

from tagger.prepare.formats import RAW_EXTENSIONS, register_heif

__all__ = ["pixel_hash", "MAX_PIXELS"]

log = logging.getLogger("tagger.prepare.hash_pixels")

#: Larger pictures are not decoded to hash them (memory), and hash whole instead.
MAX_PIXELS = 200_000_000
_ROWS = 256  # rows hashed at a time: the copy stays small beside the decoded image


def pixel_hash(path: str, source: str | Callable[[], BinaryIO] | None = None) -> str | None:
    """Hex SHA-256 of the decoded image at ``path``, or None when it cannot be decoded here.

    ``source`` reads the same file from elsewhere: a path, or a function that
    returns a new buffer of its bytes (a file already read into memory).
    ``path`` then only names it (its extension picks the decoder).
    """
    if source is None:
        source = path
    dot = path.rfind(".")
    if dot > 0 and path[dot:].lower() in RAW_EXTENSIONS:
        digest = _raw(path, source)
        if digest is not None:
            return digest
    return _pillow(path, source)


def _open_source(source: str | Callable[[], BinaryIO]) -> str | BinaryIO:
    return source if isinstance(source, str) else source()


def _raw(path: str, source: str | Callable[[], BinaryIO]) -> str | None:
    try:
        import numpy
        import rawpy
    except ImportError:
        return None
    try:
        with rawpy.imread(_open_source(source)) as raw:
            sizes = raw.sizes
            if sizes.raw_width * sizes.raw_height > MAX_PIXELS:
                return None
            data = raw.raw_image
            digest = hashlib.sha256(b"tagger-identity/raw-pixels\0")
            digest.update(struct.pack(">QQ", *data.shape) + str(data.dtype).encode())
            digest.update(numpy.ascontiguousarray(data).data.cast("B"))  # no copy of the sensor data
            return digest.hexdigest()
    except Exception as exc:  # LibRaw raises its own error tree, and MemoryError on damaged sizes
        log.debug("LibRaw cannot decode %s for its identity: %s", path, exc)
        return None


def _pillow(path: str, source: str | Callable[[], BinaryIO]) -> str | None:
    from PIL import Image  # here: most files hash by their structure, and a no-op run hashes none

    register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(_open_source(source)) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    return None
                im.load()
                digest = hashlib.sha256(b"tagger-identity/pixels\0")
                digest.update(struct.pack(">QQ", width, height) + im.mode.encode() + b"\0")
                palette = im.getpalette()
                if palette:
                    digest.update(bytes(palette))
                for top in range(0, height, _ROWS):
                    digest.update(im.crop((0, top, width, min(height, top + _ROWS))).tobytes())
                return digest.hexdigest()
    except Exception as exc:  # Pillow's decoders raise many kinds of errors on damaged data
        log.debug("Pillow cannot decode %s for its identity: %s", path, exc)
        return None
