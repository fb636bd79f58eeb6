"""The one reader of TIFF directories (TIFF, BigTIFF, DNG, CR2, NEF, ARW, ORF, RW2), and how far a RAW's data reaches.

``TiffReader`` reads the header (byte order, classic or BigTIFF, first IFD),
the entries of one IFD and their values, and ``walk``s the IFD chain and
the directories it points to (SubIFDs, EXIF). Everything a hostile file
controls is checked before it is used: every read against the file's size,
entry counts and value sizes against limits, directories against loops and
their number against a cap. Any of these raises ``Malformed`` (the hashers'
signal to fall back); nothing else escapes.

``data_extent``: LibRaw reads past the end of a truncated file without
always failing (it prints "Unexpected end of file" and decodes whatever the
buffer holds), so a cut RAW is caught here instead, deterministically,
before decoding.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from tagger.prepare.formats import BIGTIFF_MAGIC, TIFF_CLASSIC_MAGICS, is_classic_tiff, tiff_magic
from tagger.prepare.hash_io import Malformed, file_size, read_exact

__all__ = ["TYPES", "Entry", "TiffReader", "data_extent"]

#: Entry type -> (size of one value, struct code, whether the values are integers).
TYPES = {
    1: (1, "B", True),  # BYTE
    2: (1, "s", False),  # ASCII
    3: (2, "H", True),  # SHORT
    4: (4, "I", True),  # LONG
    5: (8, "II", False),  # RATIONAL: numerator, denominator
    6: (1, "b", True),  # SBYTE
    7: (1, "s", False),  # UNDEFINED
    8: (2, "h", True),  # SSHORT
    9: (4, "i", True),  # SLONG
    10: (8, "ii", False),  # SRATIONAL
    11: (4, "s", False),  # FLOAT
    12: (8, "s", False),  # DOUBLE
    13: (4, "I", True),  # IFD
    16: (8, "Q", True),  # LONG8 (BigTIFF)
    17: (8, "q", True),  # SLONG8
    18: (8, "Q", True),  # IFD8
}
SUBIFDS, EXIF_IFD = 330, 34665
MAX_ENTRIES = 10_000  # a real directory holds a few hundred at most
MAX_VALUE_BYTES = 64 << 20  # a 1-gigapixel image in 1-row strips needs 8 MB of offsets
MAX_IFDS = 256


class Entry(NamedTuple):
    """One directory entry as stored: its tag, type, number of values and value field (the values, or where they are)."""

    tag: int
    kind: int
    number: int
    field: bytes


class TiffReader:
    """The directories of a TIFF structure in an open file, at ``base`` (RAF and others embed a whole TIFF)."""

    def __init__(
        self,
        handle: BinaryIO,
        base: int = 0,
        *,
        max_entries: int | None = MAX_ENTRIES,
        max_value_bytes: int | None = MAX_VALUE_BYTES,
    ) -> None:
        self.handle = handle
        self.size = file_size(handle)
        self.base = base  # offsets inside are relative to it
        self.max_entries = max_entries
        self.max_value_bytes = max_value_bytes
        handle.seek(base)
        head = read_exact(handle, 8)
        found = tiff_magic(head)
        if found is None:
            raise Malformed
        self.order, magic = found
        self.big = magic == BIGTIFF_MAGIC
        if self.big:
            head += read_exact(handle, 8)
            #: The offset of the first directory (IFD0).
            self.first: int = struct.unpack(self.order + "Q", head[8:16])[0]
        elif magic in TIFF_CLASSIC_MAGICS:
            self.first = struct.unpack(self.order + "I", head[4:8])[0]
        else:
            raise Malformed

    def read(self, offset: int, count: int) -> bytes:
        """``count`` bytes at ``offset``; ``Malformed`` when they are not all in the file."""
        if offset < 0 or count < 0 or self.base + offset + count > self.size:
            raise Malformed
        self.handle.seek(self.base + offset)
        return read_exact(self.handle, count)

    def ifd(self, offset: int) -> tuple[list[Entry], int]:
        """The entries of the directory at ``offset``, as stored (duplicates kept), and the next one's offset."""
        count_size, entry_size, pointer = (8, 20, "Q") if self.big else (2, 12, "I")
        (count,) = struct.unpack(self.order + ("Q" if self.big else "H"), self.read(offset, count_size))
        if self.max_entries is not None and count > self.max_entries:
            raise Malformed
        table = self.read(offset + count_size, count * entry_size + (8 if self.big else 4))
        layout = self.order + ("HHQ" if self.big else "HHI")
        inline = 8 if self.big else 4
        entries = []
        for at in range(0, count * entry_size, entry_size):
            tag, kind, n = struct.unpack_from(layout, table, at)
            entries.append(Entry(tag, kind, n, table[at + entry_size - inline : at + entry_size]))
        (next_offset,) = struct.unpack_from(self.order + pointer, table, count * entry_size)
        return entries, next_offset

    def raw(self, entry: Entry) -> bytes:
        """The bytes of an entry's values, from its field or from where it points; ``Malformed`` for an unknown type."""
        if entry.kind not in TYPES:
            raise Malformed
        length = TYPES[entry.kind][0] * entry.number
        if self.max_value_bytes is not None and length > self.max_value_bytes:
            raise Malformed
        if length <= len(entry.field):
            return entry.field[:length]
        (where,) = struct.unpack(self.order + ("Q" if self.big else "I"), entry.field)
        return self.read(where, length)

    def values(self, entry: Entry) -> list:
        """An entry's values: integers for integer types, flat (numerator, denominator) pairs for rationals,
        else one ``bytes`` holding them all (ASCII, UNDEFINED, FLOAT, DOUBLE)."""
        size, code, integer = TYPES.get(entry.kind, (0, "", False))
        data = self.raw(entry)
        if integer or code in ("II", "ii"):
            return list(struct.unpack(self.order + code * entry.number, data))
        return [data]

    def walk(
        self, follow: frozenset[int] = frozenset({SUBIFDS}), max_ifds: int = MAX_IFDS, strict: bool = True
    ) -> Iterator[tuple[int, list[Entry]]]:
        """(offset, entries) of every directory: the IFD0 chain and those its ``follow`` tags point to, depth first
        (a directory, the ones it points to, then the next of its chain), each once.

        Past ``max_ifds`` directories: ``Malformed`` when ``strict``, else the walk stops there.
        """
        todo, seen = [self.first], set[int]()
        while todo:
            offset = todo.pop()
            if offset == 0 or offset in seen:
                continue
            if len(seen) >= max_ifds:
                if strict:
                    raise Malformed
                return
            seen.add(offset)
            entries, next_offset = self.ifd(offset)
            yield offset, entries
            children: list[int] = []
            for tag in sorted(follow):  # the last entry of a tag counts, as for every other tag
                found = [e for e in entries if e.tag == tag and e.kind in TYPES]
                if found:
                    values = self.values(found[-1])
                    if not all(isinstance(v, int) for v in values):
                        raise Malformed  # pointers stored as text or floats: not a directory we can follow
                    children += values
            todo.append(next_offset)
            todo.extend(reversed(children))


# -- how far a RAW's data reaches -----------------------------------------------------------------------
_OFFSET_TAGS = {273: 279, 324: 325, 513: 514}  # strips, tiles, JPEG thumbnail: offset tag -> length tag
_EXTENT_TYPES = frozenset({1, 3, 4, 7, 13, 16})  # BYTE, SHORT, LONG, UNDEFINED, IFD, LONG8


def data_extent(data: bytes, max_ifds: int = 64) -> int | None:
    """The end of the furthest strip, tile or thumbnail the IFDs point at; None when unknown (not a readable TIFF)."""
    if not is_classic_tiff(data):
        return None
    extent = 0
    try:
        # No entry or value limits: the data is in memory already, and every read is checked against its size.
        reader = TiffReader(io.BytesIO(data), max_entries=None, max_value_bytes=None)
        for _, entries in reader.walk(frozenset({SUBIFDS, EXIF_IFD}), max_ifds, strict=False):
            found: dict[int, list[int]] = {}
            for entry in entries:
                if entry.kind not in _EXTENT_TYPES or entry.kind in (1, 7) and entry.tag not in _OFFSET_TAGS:
                    continue
                found[entry.tag] = list(reader.raw(entry)) if entry.kind == 7 else reader.values(entry)
            for tag, length_tag in _OFFSET_TAGS.items():
                if tag in found and length_tag in found:
                    # A file's own counts may disagree: the pairs there are bound the extent all the same.
                    extent = max([extent] + [o + n for o, n in zip(found[tag], found[length_tag], strict=False)])
    except Malformed:
        return None  # not a directory we can read: leave the verdict to LibRaw
    return extent
