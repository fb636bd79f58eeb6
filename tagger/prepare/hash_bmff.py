"""Identity of ISOBMFF images: HEIC, HEIF, AVIF (coded image items) and Canon CR3 (media data and preview).

HEIF/AVIF: the items of the ``meta`` box in item-ID order, except EXIF and
XMP items: each item's type, its data (``iloc`` extents, in ``mdat`` or
``idat``) and its properties (``hvcC``, ``av1C``, ``ispe``, ``pixi``,
``clap``...), minus the ICC profile (``colr`` of type ``prof``/``rICC``)
and the orientation (``irot``, ``imir``), as in every other format; then
which item is primary and how items reference each other (grids, alpha,
thumbnails), by position, not by ID. A metadata writer adds or grows
EXIF/XMP items and moves data; none of that is hashed.

CR3 (no ``meta`` box): the ``mdat`` payload (the raw and JPEG tracks) and
the PRVW preview box; metadata lives in ``moov`` (CMT1-4) and the XMP box.
"""

from __future__ import annotations

import hashlib
import struct
from typing import BinaryIO

from tagger.prepare.hash_io import Malformed, copy_at, file_size, read_exact

__all__ = ["hash_bmff"]

_TAG = b"tagger-identity/isobmff\0"
_METADATA_ITEMS = frozenset({b"Exif"})
_XMP_TYPES = frozenset({b"application/rdf+xml"})
_SKIPPED_PROPERTIES = frozenset({b"irot", b"imir"})
_ICC_COLR = frozenset({b"prof", b"rICC"})
_METADATA_REFS = frozenset({b"cdsc"})  # "content describes": metadata items pointing at images
_PREVIEW_UUID = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")  # Canon PRVW
_MAX_META = 64 << 20


def _boxes(data: bytes, start: int, end: int):
    """(type, payload start, payload end) of the boxes in ``data[start:end]``."""
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise Malformed
        yield kind, at + header, at + size
        at += size


def _top_level(handle: BinaryIO, size: int):
    """(type, payload offset, payload length, first 16 payload bytes) of the file's top-level boxes."""
    at = 0
    while at + 8 <= size:
        handle.seek(at)
        head = read_exact(handle, 8)
        length, kind = struct.unpack(">I4s", head)
        header = 8
        if length == 1:
            (length,) = struct.unpack(">Q", read_exact(handle, 8))
            header = 16
        elif length == 0:
            length = size - at
        if length < header or at + length > size:
            raise Malformed
        peek = handle.read(min(16, length - header))
        yield kind, at + header, length - header, peek
        at += length


def _uint(data: bytes, at: int, size: int) -> int:
    if size == 0:
        return 0
    if at + size > len(data):
        raise Malformed
    return int.from_bytes(data[at : at + size], "big")


def hash_bmff(handle: BinaryIO, digest: hashlib._Hash) -> None:
    """Hash the coded image items (or, for CR3, the media data); ``Malformed`` when the boxes do not parse."""
    size = file_size(handle)
    boxes = list(_top_level(handle, size))
    digest.update(_TAG)
    meta = [b for b in boxes if b[0] == b"meta"]
    if meta:
        _, at, length, _ = meta[0]
        if length > _MAX_META:
            raise Malformed
        handle.seek(at)
        _hash_items(handle, digest, read_exact(handle, length), size)
        return
    found = False
    for kind, at, length, peek in boxes:
        if kind == b"mdat" or (kind == b"uuid" and peek[:16] == _PREVIEW_UUID):
            digest.update(kind + struct.pack(">Q", length))
            copy_at(handle, digest, at, length, size)
            found = found or kind == b"mdat"
    if not found:
        raise Malformed


def _hash_items(handle: BinaryIO, digest: hashlib._Hash, meta: bytes, size: int) -> None:
    children: dict[bytes, tuple[int, int]] = {}
    for kind, start, end in _boxes(meta, 4, len(meta)):  # meta is a FullBox: 4 bytes of version and flags
        children.setdefault(kind, (start, end))
    if b"iinf" not in children or b"iloc" not in children:
        raise Malformed
    items = _item_types(meta, *children[b"iinf"])
    kept = sorted(
        i
        for i, (kind, content) in items.items()
        if kind not in _METADATA_ITEMS and not (kind == b"mime" and content in _XMP_TYPES)
    )
    if not kept:
        raise Malformed
    position = {item: n for n, item in enumerate(kept)}
    locations = _locations(meta, *children[b"iloc"])
    idat = children.get(b"idat")
    properties, associations = _properties(meta, *children[b"iprp"]) if b"iprp" in children else ([], {})
    for item in kept:
        kind, content = items[item]
        digest.update(b"\0item" + kind + content + b"\0")
        method, extents = locations.get(item, (0, []))
        digest.update(struct.pack(">Q", len(extents)))
        for offset, length in extents:
            digest.update(struct.pack(">Q", length))
            if method == 0:
                copy_at(handle, digest, offset, length, size)
            elif method == 1 and idat is not None and idat[0] + offset + length <= idat[1]:
                digest.update(meta[idat[0] + offset : idat[0] + offset + length])
            else:
                raise Malformed  # item-offset construction, or outside idat: not a layout read here
        for index in associations.get(item, []):
            if not 1 <= index <= len(properties):
                raise Malformed
            prop_kind, body = properties[index - 1]
            if prop_kind in _SKIPPED_PROPERTIES or (prop_kind == b"colr" and body[:4] in _ICC_COLR):
                continue
            digest.update(prop_kind + struct.pack(">I", len(body)) + body)
    if b"pitm" in children:
        start, end = children[b"pitm"]
        primary = _uint(meta, start + 4, 2 if meta[start] == 0 else 4)
        digest.update(b"\0primary" + struct.pack(">q", position.get(primary, -1)))
    refs = sorted(_references(meta, *children[b"iref"], position)) if b"iref" in children else []
    if refs:  # a writer adding EXIF adds an iref box of metadata references only: that is no reference at all
        digest.update(b"\0refs" + repr(refs).encode())


def _item_types(meta: bytes, start: int, end: int) -> dict[int, tuple[bytes, bytes]]:
    """item ID -> (item type, MIME content type or b'')."""
    version = meta[start]
    count_size = 2 if version == 0 else 4
    items = {}
    for kind, s, e in _boxes(meta, start + 4 + count_size, end):
        if kind != b"infe":
            continue
        version = meta[s]
        if version < 2:
            item = _uint(meta, s + 4, 2)
            items[item] = (b"mime", b"")  # versions 0 and 1 carry no item type: treat as data
            continue
        id_size = 2 if version == 2 else 4
        item = _uint(meta, s + 4, id_size)
        at = s + 4 + id_size + 2
        item_type = meta[at : at + 4]
        content = b""
        if item_type == b"mime":
            name_end = meta.find(b"\0", at + 4, e)
            if name_end >= 0:
                type_end = meta.find(b"\0", name_end + 1, e)
                content = meta[name_end + 1 : type_end if type_end >= 0 else e]
        items[item] = (item_type, content)
    return items


def _locations(meta: bytes, start: int, end: int) -> dict[int, tuple[int, list[tuple[int, int]]]]:
    """item ID -> (construction method, [(offset, length)]) from ``iloc``."""
    version = meta[start]
    at = start + 4
    sizes = _uint(meta, at, 2)
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 0xF, (sizes >> 4) & 0xF
    index_size = sizes & 0xF if version in (1, 2) else 0
    at += 2
    count_size = 2 if version < 2 else 4
    count = _uint(meta, at, count_size)
    at += count_size
    found = {}
    for _ in range(count):
        item = _uint(meta, at, count_size)
        at += count_size
        method = 0
        if version in (1, 2):
            method = _uint(meta, at, 2) & 0xF
            at += 2
        at += 2  # data reference index
        base = _uint(meta, at, base_size)
        at += base_size
        extents = _uint(meta, at, 2)
        at += 2
        spans = []
        for _ in range(extents):
            at += index_size
            offset = _uint(meta, at, offset_size)
            at += offset_size
            length = _uint(meta, at, length_size)
            at += length_size
            spans.append((base + offset, length))
        if at > end:
            raise Malformed
        found[item] = (method, spans)
    return found


def _properties(meta: bytes, start: int, end: int) -> tuple[list[tuple[bytes, bytes]], dict[int, list[int]]]:
    """The ``ipco`` property boxes (type, payload) and item ID -> property indices from ``ipma``."""
    properties: list[tuple[bytes, bytes]] = []
    associations: dict[int, list[int]] = {}
    for kind, s, e in _boxes(meta, start, end):
        if kind == b"ipco":
            properties = [(k, meta[ps:pe]) for k, ps, pe in _boxes(meta, s, e)]
        elif kind == b"ipma":
            version, flags = meta[s], _uint(meta, s + 1, 3)
            count = _uint(meta, s + 4, 4)
            at = s + 8
            for _ in range(count):
                id_size = 2 if version < 1 else 4
                item = _uint(meta, at, id_size)
                at += id_size
                n = _uint(meta, at, 1)
                at += 1
                wide = flags & 1
                indices = []
                for _ in range(n):
                    value = _uint(meta, at, 2 if wide else 1)
                    at += 2 if wide else 1
                    indices.append(value & (0x7FFF if wide else 0x7F))
                if at > e:
                    raise Malformed
                associations.setdefault(item, []).extend(indices)
    return properties, associations


def _references(
    meta: bytes, start: int, end: int, position: dict[int, int]
) -> list[tuple[bytes, int, tuple[int, ...]]]:
    """(type, from, to...) of the references between hashed items, by their position."""
    version = meta[start]
    id_size = 2 if version == 0 else 4
    refs = []
    for kind, s, _e in _boxes(meta, start + 4, end):
        if kind in _METADATA_REFS:
            continue
        source = _uint(meta, s, id_size)
        count = _uint(meta, s + id_size, 2)
        targets = [_uint(meta, s + id_size + 2 + i * id_size, id_size) for i in range(count)]
        if source in position:
            refs.append((kind, position[source], tuple(position[t] for t in targets if t in position)))
    return refs
