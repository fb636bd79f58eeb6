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

__all__ = ["is_tiff", "is_raf", "hash_tiff", "hash_raf"]

# Classic TIFF (42), Olympus ORF (0x4F52 "RO", 0x5352 "RS"), Panasonic RW2 (0x55); BigTIFF (43) has 8-byte offsets.
_CLASSIC = frozenset({42, 0x4F52, 0x5352, 0x55})
_BIG = 43
_SUBIFDS = 330
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
_TYPES = {  # type -> (size, struct code, is an integer)
    1: (1, "B", True),
    2: (1, "s", False),
    3: (2, "H", True),
    4: (4, "I", True),
    5: (8, "II", False),
    6: (1, "b", True),
    7: (1, "s", False),
    8: (2, "h", True),
    9: (4, "i", True),
    10: (8, "ii", False),
    11: (4, "s", False),
    12: (8, "s", False),
    13: (4, "I", True),
    16: (8, "Q", True),
    17: (8, "q", True),
    18: (8, "Q", True),
}
_MAX_IFDS = 256
_MAX_VALUE_BYTES = 64 << 20  # a 1-gigapixel image in 1-row strips needs 8 MB of offsets
_TAG = b"tagger-identity/tiff\0"
_RAF_MAGIC = b"FUJIFILMCCD-RAW"


def is_tiff(head: bytes) -> bool:
    """Whether the first bytes open a TIFF-like directory structure this module reads."""
    if head[:2] not in (b"II", b"MM") or len(head) < 8:
        return False
    (magic,) = struct.unpack(("<" if head[:2] == b"II" else ">") + "H", head[2:4])
    return magic in _CLASSIC or magic == _BIG


def is_raf(head: bytes) -> bool:
    """Whether the first bytes are a Fujifilm RAF header."""
    return head.startswith(_RAF_MAGIC)


class _Reader:
    def __init__(self, handle: BinaryIO, base: int = 0) -> None:
        self.handle = handle
        self.size = file_size(handle)
        self.base = base  # RAF keeps a whole TIFF inside; its offsets are relative to it
        handle.seek(base)
        head = read_exact(handle, 8)
        self.order = "<" if head[:2] == b"II" else ">"
        (magic,) = struct.unpack(self.order + "H", head[2:4])
        self.big = magic == _BIG
        if self.big:
            head += read_exact(handle, 8)
            self.first = struct.unpack(self.order + "Q", head[8:16])[0]
        elif magic in _CLASSIC:
            self.first = struct.unpack(self.order + "I", head[4:8])[0]
        else:
            raise Malformed

    def read(self, offset: int, count: int) -> bytes:
        if offset < 0 or count < 0 or self.base + offset + count > self.size:
            raise Malformed
        self.handle.seek(self.base + offset)
        return read_exact(self.handle, count)

    def ifd(self, offset: int) -> tuple[list[tuple[int, int, list]], int]:
        """The entries (tag, type, values) of one directory and the next one's offset."""
        count_size, entry_size, pointer = (8, 20, "Q") if self.big else (2, 12, "I")
        (count,) = struct.unpack(self.order + ("Q" if self.big else "H"), self.read(offset, count_size))
        if count > 10_000:
            raise Malformed
        table = self.read(offset + count_size, count * entry_size + (8 if self.big else 4))
        inline = 8 if self.big else 4
        entries = []
        for i in range(count):
            at = i * entry_size
            if self.big:
                tag, kind, n = struct.unpack_from(self.order + "HHQ", table, at)
            else:
                tag, kind, n = struct.unpack_from(self.order + "HHI", table, at)
            if kind not in _TYPES or not (tag in DECODING_TAGS or tag in _DATA_TAGS or tag == _SUBIFDS):
                continue
            size, code, integer = _TYPES[kind]
            length = size * n
            if length > _MAX_VALUE_BYTES:
                raise Malformed
            field = table[at + entry_size - inline : at + entry_size]
            raw = (
                field[:length] if length <= inline else self.read(struct.unpack(self.order + pointer, field)[0], length)
            )
            if integer:
                values: list = list(struct.unpack(self.order + code * n, raw))
            elif code in ("II", "ii"):
                values = list(struct.unpack(self.order + code * n, raw))
            else:
                values = [raw]
            entries.append((tag, kind, values))
        (next_offset,) = struct.unpack_from(self.order + pointer, table, count * entry_size)
        return entries, next_offset


def hash_tiff(handle: BinaryIO, digest: hashlib._Hash, base: int = 0) -> None:
    """Hash the image directories and their data blocks; ``Malformed`` when they do not parse or hold no data."""
    try:
        reader = _Reader(handle, base)
    except struct.error as exc:
        raise Malformed from exc
    digest.update(_TAG + reader.order.encode())
    todo, seen, blocks = [reader.first], set[int](), 0
    while todo:
        offset = todo.pop()
        if offset == 0 or offset in seen:
            continue
        if len(seen) >= _MAX_IFDS:
            raise Malformed
        seen.add(offset)
        try:
            entries, next_offset = reader.ifd(offset)
        except struct.error as exc:
            raise Malformed from exc
        by_tag = {tag: values for tag, _, values in entries}
        digest.update(b"\0IFD")
        for tag, kind, values in sorted(entries, key=lambda e: e[0]):
            if tag in DECODING_TAGS:
                # Integers hash by value, whatever their stored width (a writer may widen SHORT to LONG).
                body = repr(values).encode() if _TYPES[kind][2] or _TYPES[kind][1] in ("II", "ii") else values[0]
                digest.update(struct.pack(">HBQ", tag, 0 if _TYPES[kind][2] else kind, len(body)) + body)
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
        # Depth first: this directory's SubIFDs, then the next directory of the chain.
        todo.append(next_offset)
        todo.extend(reversed(by_tag.get(_SUBIFDS, [])))
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
