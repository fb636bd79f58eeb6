"""Identity of TIFF-based files (TIFF, DNG, CR2, NEF, ARW, ORF, RW2, PEF) and of Fujifilm RAF.

What is hashed: the byte order, then for every image directory (the IFD0
chain and the SubIFDs below them, depth first) the tags that say how to
decode its data (dimensions, bits, compression, photometric, CFA layout,
black and white levels...) and the data itself: the bytes of every strip,
tile and JPEG interchange block, wherever in the file they now sit.

What is not: every other tag (XMP 700, IPTC 33723, Photoshop 34377,
ImageDescription, Artist, Copyright, DateTime, Software, resolution,
orientation, the ICC profile 34675, colour matrices), the EXIF, GPS and
Interoperability directories and the maker notes inside them, and where
anything sits. A metadata writer (exiftool, Lightroom, digiKam) rewrites
directories and moves data blocks but leaves the blocks' bytes alone.
"""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

from tagger.prepare.hash_io import Malformed, copy_at, file_size, read_exact
from tagger.prepare.hash_jpeg import hash_jpeg
from tagger.prepare.tiff import SUBIFDS, TYPES, TiffReader

__all__ = ["DECODING_TAGS", "hash_tiff", "hash_raf"]

# Data blocks: offset tag -> length tag (strips, tiles, JPEG interchange format).
_DATA = {273: 279, 324: 325, 513: 514}
_DATA_TAGS = frozenset(_DATA) | frozenset(_DATA.values())
#: Tags that say how the data decodes; every other tag is metadata for identity's purposes.
DECODING_TAGS = frozenset(
    {
        254,
        255,  # NewSubfileType, SubfileType: which image this is (main, preview, mask)
        256,
        257,
        258,
        259,
        262,
        266,  # width, length, bits, compression, photometric, fill order
        277,
        278,
        284,
        292,
        293,
        317,  # samples, rows per strip, planar, T4/T6 options, predictor
        320,
        322,
        323,
        338,
        339,
        340,
        341,
        347,  # colour map, tile size, extra samples, sample format/range, JPEG tables
        512,
        529,
        530,
        531,
        532,  # JPEG process, YCbCr coefficients/subsampling/positioning, reference black/white
        33421,
        33422,  # CFARepeatPatternDim, CFAPattern
        50710,
        50711,
        50712,
        50713,
        50714,
        50715,
        50716,
        50717,  # DNG CFA plane/layout, linearisation, black/white
        50718,
        50719,
        50720,
        50733,
        50829,
        50830,  # DNG scale, crop, green split, active and masked areas
        51008,
        51009,
        51022,  # DNG opcode lists
        50752,  # Canon CR2 slices
    }
)
_MAX_IFDS = 256
_TAG = b"tagger-identity/tiff\0"


def hash_tiff(handle: BinaryIO, digest: hashlib._Hash, base: int = 0) -> None:
    """Hash the image directories and their data blocks; ``Malformed`` when they do not parse or hold no data."""
    reader = TiffReader(handle, base)
    digest.update(_TAG + reader.order.encode())
    blocks = 0
    for _, stored in reader.walk(frozenset({SUBIFDS}), _MAX_IFDS):
        entries = [
            (entry.tag, entry.kind, reader.values(entry))
            for entry in stored
            if entry.kind in TYPES and (entry.tag in DECODING_TAGS or entry.tag in _DATA_TAGS)
        ]
        by_tag = {tag: values for tag, _, values in entries}
        digest.update(b"\0IFD")
        for tag, kind, values in sorted(entries, key=lambda e: e[0]):
            if tag in DECODING_TAGS:
                size, code, integer = TYPES[kind]
                # Integers hash by value, whatever their stored width (a writer may widen SHORT to LONG).
                body = repr(values).encode() if integer or code in ("II", "ii") else values[0]
                digest.update(struct.pack(">HBQ", tag, 0 if integer else kind, len(body)) + body)
        for tag, length_tag in _DATA.items():
            offsets, lengths = by_tag.get(tag), by_tag.get(length_tag)
            if offsets is None or lengths is None:
                continue
            if len(offsets) != len(lengths):
                raise Malformed
            digest.update(struct.pack(">HQ", tag, len(offsets)))
            for where, count in zip(offsets, lengths, strict=True):
                digest.update(struct.pack(">Q", count))
                copy_at(handle, digest, base + where, count, reader.size)
                blocks += 1
    if not blocks:
        raise Malformed  # no image data found: not a layout this reader understands


def hash_raf(handle: BinaryIO, digest: hashlib._Hash) -> None:
    """Fujifilm RAF: the embedded JPEG's image data (metadata segments skipped) and the raw data blocks."""
    size = file_size(handle)
    handle.seek(84)
    try:
        jpeg_at, jpeg_len, cfa_header_at, cfa_header_len, cfa_at, cfa_len = struct.unpack(">6I", read_exact(handle, 24))
    except struct.error as exc:
        raise Malformed from exc
    digest.update(b"tagger-identity/raf\0")
    if jpeg_len:
        if jpeg_at + jpeg_len > size:
            raise Malformed
        handle.seek(jpeg_at)
        hash_jpeg(handle, digest)
    for at, length in ((cfa_header_at, cfa_header_len), (cfa_at, cfa_len)):
        digest.update(struct.pack(">Q", length))
        copy_at(handle, digest, at, length, size)
    if not cfa_len:
        raise Malformed
