"""How far into the file a TIFF-based RAW's image data reaches (DNG, CR2, NEF, ARW...).

LibRaw reads past the end of a truncated file without always failing (it
prints "Unexpected end of file" and decodes whatever the buffer holds), so
a cut RAW is caught here instead, deterministically, before decoding.
"""

from __future__ import annotations

import struct

__all__ = ["data_extent"]

_OFFSET_TAGS = {273: 279, 324: 325, 513: 514}  # strips, tiles, JPEG thumbnail: offset tag -> length tag
_SUBIFDS = 330
_EXIF_IFD = 34665
_TYPE_SIZES = {1: 1, 3: 2, 4: 4, 7: 1, 13: 4, 16: 8}  # BYTE, SHORT, LONG, UNDEFINED, IFD, LONG8


def data_extent(data: bytes, max_ifds: int = 64) -> int | None:
    """The end of the furthest strip, tile or thumbnail the IFDs point at; None when unknown (not a readable TIFF)."""
    if data[:4] == b"II*\x00":
        order = "<"
    elif data[:4] == b"MM\x00*":
        order = ">"
    else:
        return None
    try:
        first = struct.unpack_from(order + "I", data, 4)[0]
    except struct.error:
        return None
    extent = 0
    todo, seen = [first], set[int]()
    while todo and len(seen) < max_ifds:
        offset = todo.pop()
        if offset == 0 or offset in seen:
            continue
        seen.add(offset)
        try:
            entries = _read_ifd(data, offset, order)
        except (struct.error, ValueError):
            return None  # not a directory we can read: leave the verdict to LibRaw
        for tag, values in entries.items():
            if tag in _OFFSET_TAGS and _OFFSET_TAGS[tag] in entries:
                lengths = entries[_OFFSET_TAGS[tag]]
                # A file's own counts may disagree: the pairs there are bound the extent all the same.
                extent = max([extent] + [o + n for o, n in zip(values, lengths, strict=False)])
            elif tag in (_SUBIFDS, _EXIF_IFD):
                todo.extend(values)
        todo.append(entries.get(-1, [0])[0])
    return extent


def _read_ifd(data: bytes, offset: int, order: str) -> dict[int, list[int]]:
    """The integer-valued entries of one IFD; key -1 holds the next IFD's offset."""
    (count,) = struct.unpack_from(order + "H", data, offset)
    entries: dict[int, list[int]] = {}
    for i in range(count):
        tag, kind, n, raw = struct.unpack_from(order + "HHI4s", data, offset + 2 + 12 * i)
        size = _TYPE_SIZES.get(kind)
        if size is None or kind in (1, 7) and tag not in _OFFSET_TAGS:
            continue
        where = raw if size * n <= 4 else None
        if where is None:
            (pointer,) = struct.unpack(order + "I", raw)
            if pointer + size * n > len(data):
                raise ValueError("entry values beyond the end of the file")
            where = data[pointer : pointer + size * n]
        fmt = {1: "B", 3: "H", 4: "I", 7: "B", 13: "I", 16: "Q"}[kind]
        entries[tag] = list(struct.unpack_from(order + fmt * n, where))
    (entries[-1],) = ([struct.unpack_from(order + "I", data, offset + 2 + 12 * count)[0]],)
    return entries
