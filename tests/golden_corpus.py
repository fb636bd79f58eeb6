"""A byte-built corpus of every format and hostile edge the identity hashers read, for the golden identity test.

Every file is written here byte by byte (or by ``rawfiles.dng``, itself byte by
byte): no encoder (libjpeg, libwebp, x265, zlib's compressor) whose output
could change with a library upgrade, so a changed digest can only mean a
changed hasher. Pixel data is stored uncompressed (PNG uses stored deflate
blocks) where a decoder must read it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rawfiles import dng, raw_scene, scene, to_8bit

__all__ = ["golden_corpus"]

BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED, SSHORT = 1, 2, 3, 4, 5, 6, 7, 8
SLONG, SRATIONAL, FLOAT, DOUBLE, IFD, LONG8 = 9, 10, 11, 12, 13, 16
_CODE = {BYTE: "B", SHORT: "H", LONG: "I", SBYTE: "b", SSHORT: "h", SLONG: "i", IFD: "I", LONG8: "Q", FLOAT: "f"}
_CODE |= {DOUBLE: "d"}

Layout = dict[tuple[str, int], int]
Value = Any  # list of numbers or pairs, str (ASCII), bytes (UNDEFINED/BYTE), or a function of the layout


def at(key: str, index: int) -> Callable[[Layout], list[int]]:
    """A value giving the offset of IFD or block ``index`` once the layout is known."""
    return lambda layout: [layout[key, index]]


def _value_bytes(order: str, kind: int, values: Value) -> tuple[bytes, int]:
    if isinstance(values, str):
        raw = values.encode("latin-1") + b"\0"
        return raw, len(raw)
    if isinstance(values, bytes):
        return values, len(values)
    if kind in (RATIONAL, SRATIONAL):
        code = "II" if kind == RATIONAL else "ii"
        return b"".join(struct.pack(order + code, *pair) for pair in values), len(values)
    return struct.pack(f"{order}{len(values)}{_CODE[kind]}", *values), len(values)


def tiff(
    ifds: Sequence[tuple[Sequence[tuple[int, int, Value]], Value]],
    blocks: Sequence[bytes] = (),
    *,
    order: str = "<",
    big: bool = False,
    magic: bytes | None = None,
    header_extra: bytes = b"",
    first: Value = None,
) -> bytes:
    """A TIFF: header, the IFDs in order (each with its out-of-line values), then the data blocks.

    Each IFD is (entries, next): ``next`` is None (end of chain), an offset, or a
    function of the layout. Entry values may be functions of the layout, which maps
    ("ifd", i) and ("block", j) to file offsets. Entries are written as given (unsorted,
    duplicates kept): hostile files are built with this too.
    """
    inline = 8 if big else 4
    mark = magic or ((b"II" if order == "<" else b"MM") + struct.pack(order + "H", 43 if big else 42))

    def build(layout: Layout) -> tuple[bytes, Layout]:
        found: Layout = {}
        head_len = (16 if big else 8) + len(header_extra)
        pos = head_len
        body: list[bytes] = []
        for i, (entries, nxt) in enumerate(ifds):
            found["ifd", i] = pos
            table_len = (8 if big else 2) + len(entries) * (20 if big else 12) + (8 if big else 4)
            extra = b""
            table = struct.pack(order + ("Q" if big else "H"), len(entries))
            for tag, kind, values in entries:
                values = values(layout) if callable(values) else values
                raw, count = _value_bytes(order, kind, values)
                if len(raw) <= inline:
                    field = raw.ljust(inline, b"\0")
                else:
                    field = struct.pack(order + ("Q" if big else "I"), pos + table_len + len(extra))
                    extra += raw + b"\0" * (len(raw) % 2)
                table += struct.pack(order + ("HHQ" if big else "HHI"), tag, kind, count) + field
            nxt = nxt(layout)[0] if callable(nxt) else (nxt or 0)
            table += struct.pack(order + ("Q" if big else "I"), nxt)
            body.append(table + extra)
            pos += len(body[-1])
        for j, block in enumerate(blocks):
            found["block", j] = pos
            body.append(block + b"\0" * (len(block) % 2))
            pos += len(body[-1])
        start = first(layout)[0] if callable(first) else (layout.get(("ifd", 0), 0) if first is None else first)
        if big:
            head = mark + struct.pack(order + "HHQ", 8, 0, start)
        else:
            head = mark + struct.pack(order + "I", start)
        return head + header_extra + b"".join(body), found

    zeros: Layout = {("ifd", i): 0 for i in range(len(ifds))} | {("block", j): 0 for j in range(len(blocks))}
    _, layout = build(zeros)
    data, check = build(layout)
    assert check == layout
    return data


def _pixels(width: int, height: int, seed: int, channels: int = 3) -> bytes:
    """Deterministic pixel bytes (a pattern, no random generator whose algorithm could change)."""
    return bytes(
        (x * 7 + y * 13 + c * 61 + seed * 29) % 256
        for y in range(height)
        for x in range(width)
        for c in range(channels)
    )


def rgb_ifd(width: int, height: int, block: int, extra: Sequence[tuple[int, int, Value]] = ()) -> list:
    """The entries of an uncompressed RGB image whose single strip is data block ``block``."""
    return [
        (256, LONG, [width]),
        (257, LONG, [height]),
        (258, SHORT, [8, 8, 8]),
        (259, SHORT, [1]),
        (262, SHORT, [2]),
        (273, LONG, at("block", block)),
        (277, SHORT, [3]),
        (278, LONG, [height]),
        (279, LONG, [width * height * 3]),
        (284, SHORT, [1]),
        *extra,
    ]


# Metadata tags a writer edits; none of them is identity.
def _iim(dataset: int, text: bytes) -> bytes:
    return b"\x1c\x02" + bytes((dataset,)) + struct.pack(">H", len(text)) + text


_IPTC = b"\x1c\x01\x5a\x00\x03\x1b%G" + _iim(120, "café caption".encode()) + _iim(25, b"kw1") + _iim(25, b"kw2")
_IPTC += b"\0" * (-len(_IPTC) % 4)
_XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def metadata_tags(order: str, artist: str = "Ann") -> list:
    """ImageDescription, Artist, Copyright, Rating, XPTitle, XMP (BYTE) and IPTC (LONG-typed, as Photoshop writes)."""
    return [
        (270, ASCII, "a description"),
        (315, ASCII, artist),
        (33432, ASCII, "(c) Ann"),
        (18246, SHORT, [4]),
        (0x9C9B, BYTE, "xp title".encode("utf-16-le") + b"\0\0"),
        (700, BYTE, _XMP),
        (33723, LONG, list(struct.unpack(f"{order}{len(_IPTC) // 4}I", _IPTC))),
        (274, SHORT, [6]),
        (305, ASCII, "Some editor 1.0"),
        (282, RATIONAL, [(300, 1)]),
    ]


# --- JPEG, PNG, GIF, WebP, BMP, ISOBMFF ----------------------------------------------------


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def jpeg(apps: Sequence[bytes] = (), scan: bytes = bytes(range(0x20, 0x90)) + b"\xff\x00\xff\xd0xyz") -> bytes:
    """SOI, the APPn/COM segments given, DQT, SOF0, DHT, SOS, scan data (with stuffing and a restart), EOI."""
    return (
        b"\xff\xd8"
        + b"".join(apps)
        + _segment(0xDB, b"\x00" + bytes(range(1, 65)))
        + _segment(0xC0, b"\x08\x00\x10\x00\x10\x01\x01\x11\x00")
        + _segment(0xC4, b"\x00" + bytes([0, 1] + [0] * 14) + b"\x05")
        + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + scan
        + b"\xff\xd9"
    )


JFIF = _segment(0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00")
EXIF_APP1 = _segment(0xE1, b"Exif\0\0" + tiff([([(315, ASCII, "Ann"), (274, SHORT, [6])], None)]))
ICC_APP2 = _segment(0xE2, b"ICC_PROFILE\0\x01\x01" + b"profile" * 10)
IPTC_APP13 = _segment(0xED, b"Photoshop 3.0\0" + b"8BIM\x04\x04\0\0" + struct.pack(">I", len(_IPTC)) + _IPTC)
COMMENT = _segment(0xFE, b"a comment")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int = 4, height: int = 3, extra: Sequence[bytes] = (), seed: int = 0) -> bytes:
    """An 8-bit RGB PNG, its IDAT one stored (uncompressed) deflate block."""
    pixels = _pixels(width, height, seed)
    raw = b"".join(b"\0" + pixels[y * width * 3 : (y + 1) * width * 3] for y in range(height))
    stored = (
        b"\x78\x01\x01" + struct.pack("<HH", len(raw), len(raw) ^ 0xFFFF) + raw + struct.pack(">I", zlib.adler32(raw))
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + b"".join(extra)
        + _png_chunk(b"IDAT", stored)
        + _png_chunk(b"IEND", b"")
    )


PNG_META = (
    _png_chunk(b"tEXt", b"Comment\0hello"),
    _png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"profile", 0)),
    _png_chunk(b"eXIf", tiff([([(315, ASCII, "Ann")], None)], order=">")),
    _png_chunk(b"tIME", b"\x07\xe4\x01\x02\x03\x04\x05"),
)

# The classic 1x1 GIF, and the same with the blocks a metadata writer adds.
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
GIF_META = GIF[:19] + b"!\xfe\x09a comment\x00" + b"!\xff\x0bXMP DataXMP\x05<x:x>\x00" + GIF[19:]


def _riff(chunks: Sequence[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1) for kind, data in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


VP8L = b"\x2f\x03\x00\x00\x00" + bytes(range(40))  # a lossless bitstream header and made-up data: never decoded here


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full(kind: bytes, payload: bytes, version: int = 0) -> bytes:
    return _box(kind, bytes((version, 0, 0, 0)) + payload)


def heif(with_metadata: bool, coded: bytes = b"HEVCDATA" * 20, bad_offset: bool = False) -> bytes:
    """ftyp, meta (hdlr, pitm, iloc, iinf, iprp, iref) and mdat: one hvc1 item, and EXIF/XMP items when asked."""
    exif, xmp = b"\0\0\0\x06Exif\0\0II*\0" + b"x" * 20, b"<x:xmpmeta>caption</x:xmpmeta>"
    items = [(1, b"hvc1", b"", coded)]
    if with_metadata:
        items += [(2, b"Exif", b"", exif), (3, b"mime", b"application/rdf+xml", xmp)]
    properties = [_box(b"hvcC", b"\x01config" * 3), _full(b"ispe", struct.pack(">II", 64, 48))]
    associations = {1: [1, 2]}
    if with_metadata:
        properties += [_box(b"colr", b"prof" + b"icc" * 10), _box(b"irot", b"\x01")]
        associations[1] += [3, 4]

    def build(mdat_at: int) -> bytes:
        iloc = struct.pack(">BBH", 0x44, 0x00, len(items))
        pos = mdat_at + 8
        for item, _, _, data in items:
            iloc += struct.pack(">HHHII", item, 0, 1, (1 << 30) if bad_offset else pos, len(data))
            pos += len(data)
        infes = b"".join(
            _full(
                b"infe", struct.pack(">HH", item, 0) + kind + (b"\0" + content + b"\0" if kind == b"mime" else b"\0"), 2
            )
            for item, kind, content, _ in items
        )
        ipma = struct.pack(">I", len(associations)) + b"".join(
            struct.pack(">HB", item, len(ix)) + bytes(ix) for item, ix in associations.items()
        )
        children = (
            _full(b"hdlr", b"\0\0\0\0pict" + b"\0" * 13)
            + _full(b"pitm", struct.pack(">H", 1))
            + _full(b"iloc", iloc)
            + _full(b"iinf", struct.pack(">H", len(items)) + infes)
            + _box(b"iprp", _box(b"ipco", b"".join(properties)) + _full(b"ipma", ipma))
        )
        if with_metadata:
            children += _full(b"iref", _box(b"cdsc", struct.pack(">HHH", 2, 1, 1)))
        head = _box(b"ftyp", b"heic\0\0\0\0mif1heic") + _full(b"meta", children)
        return head + _box(b"mdat", b"".join(data for *_, data in items))

    head_len = len(build(0)) - 8 - sum(len(d) for *_, d in items)
    return build(head_len)


def cr3(exif: bytes, raw: bytes) -> bytes:
    """A CR3-like file: ftyp crx, moov (CMT1), the XMP and PRVW uuid boxes, mdat."""
    return (
        _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom")
        + _box(b"moov", _box(b"uuid", bytes.fromhex("85c0b687820f11e08111f4ce462b6a48") + _box(b"CMT1", exif)))
        + _box(b"uuid", bytes.fromhex("be7acfcb97a942e89c71999491e3afac") + b"<x:xmpmeta/>")
        + _box(b"uuid", bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16") + jpeg([JFIF]))
        + _box(b"mdat", raw)
    )


def bmp(width: int = 3, height: int = 2) -> bytes:
    """A 24-bit bottom-up BMP, rows padded to four bytes."""
    stride = (width * 3 + 3) & ~3
    rows = b"".join(_pixels(width, 1, y).ljust(stride, b"\0") for y in range(height))
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(rows), 0, 0, 54) + dib + rows


def raf(jpeg_data: bytes, cfa: bytes, jpeg_len: int | None = None) -> bytes:
    """A Fujifilm RAF: header, the offset table, the embedded JPEG, a CFA header and the CFA data."""
    header = b"FUJIFILMCCD-RAW 0201FF383501" + b"X-T3".ljust(32, b"\0") + b"0100" + b"\0" * 20
    jpeg_at = 84 + 24 + 52
    cfa_header = b"\0\0\0\x01" + b"dims" * 4
    table = struct.pack(
        ">6I",
        jpeg_at,
        len(jpeg_data) if jpeg_len is None else jpeg_len,
        jpeg_at + len(jpeg_data),
        len(cfa_header),
        jpeg_at + len(jpeg_data) + len(cfa_header),
        len(cfa),
    )
    return header + table + b"\0" * 52 + jpeg_data + cfa_header + cfa


# --- the corpus ------------------------------------------------------------------------------


def _tiffs() -> dict[str, bytes]:
    w, h = 6, 4
    strip, strip2 = _pixels(w, h, 1), _pixels(w, h, 2)
    files: dict[str, bytes] = {}
    for order, tag in (("<", "ii"), (">", "mm")):
        files[f"plain_{tag}.tif"] = tiff([(rgb_ifd(w, h, 0), None)], [strip], order=order)
        files[f"meta_{tag}.tif"] = tiff([(rgb_ifd(w, h, 0, metadata_tags(order)), None)], [strip], order=order)
        files[f"multipage_{tag}.tif"] = tiff(
            [(rgb_ifd(w, h, 0), at("ifd", 1)), (rgb_ifd(w, h, 1), None)], [strip, strip2], order=order
        )
        files[f"big_{tag}.tif"] = tiff(
            [(rgb_ifd(w, h, 0, metadata_tags(order)), at("ifd", 1)), (rgb_ifd(w, h, 1), None)],
            [strip, strip2],
            order=order,
            big=True,
        )
    files["meta_other_artist.tif"] = tiff([(rgb_ifd(w, h, 0, metadata_tags("<", "Bob")), None)], [strip])
    files["two_strips.tif"] = tiff(
        [
            (
                [
                    *rgb_ifd(w, h, 0)[:5],
                    (273, LONG, lambda layout: [layout["block", 0], layout["block", 1]]),
                    (277, SHORT, [3]),
                    (278, SHORT, [2]),
                    (279, SHORT, [w * 2 * 3, w * 2 * 3]),
                ],
                None,
            )
        ],
        [strip[: w * 6], strip[w * 6 :]],
    )
    tile = _pixels(16, 16, 3)
    files["tiled.tif"] = tiff(
        [
            (
                [
                    (256, SHORT, [16]),
                    (257, SHORT, [16]),
                    (258, SHORT, [8, 8, 8]),
                    (259, SHORT, [1]),
                    (262, SHORT, [2]),
                    (277, SHORT, [3]),
                    (322, SHORT, [16]),
                    (323, SHORT, [16]),
                    (324, LONG8, at("block", 0)),
                    (325, LONG, [len(tile)]),
                    (339, SHORT, [1, 1, 1]),
                    (50714, RATIONAL, [(1, 2)]),
                    (50715, SRATIONAL, [(-1, 3), (5, 7)]),
                    (50716, DOUBLE, [0.5]),
                    (33422, UNDEFINED, b"\0\1\1\2"),
                    (51009, UNDEFINED, b"opcodes list" * 3),
                    (317, SSHORT, [1]),
                    (320, SHORT, list(range(3 * 256))),
                ],
                None,
            )
        ],
        [tile],
    )
    files["subifd_tree.tif"] = tiff(
        [
            (rgb_ifd(w, h, 0, [(330, LONG, lambda layout: [layout["ifd", 1], layout["ifd", 2]])]), at("ifd", 3)),
            (rgb_ifd(w, h, 1, [(330, IFD, at("ifd", 4))]), None),
            (rgb_ifd(w, h, 2), None),
            (rgb_ifd(w, h, 0), None),
            (rgb_ifd(w, h, 1), None),
        ],
        [strip, strip2, _pixels(w, h, 5)],
    )
    # Camera RAW layouts (TIFF-based), made up but shaped like the real ones.
    thumb, preview, cfa = jpeg([JFIF]), jpeg([JFIF, EXIF_APP1], bytes(range(256)) * 3), _pixels(16, 8, 9, 2)
    cfa_tags = [
        (254, LONG, [0]),
        (256, LONG, [16]),
        (257, LONG, [8]),
        (258, SHORT, [16]),
        (259, SHORT, [1]),
        (262, SHORT, [32803]),
        (273, LONG, at("block", 2)),
        (277, SHORT, [1]),
        (278, LONG, [8]),
        (279, LONG, [len(cfa)]),
        (33421, SHORT, [2, 2]),
        (33422, BYTE, [0, 1, 1, 2]),
    ]
    exif_ifd = [(0x829A, RATIONAL, [(1, 250)]), (0x927C, UNDEFINED, b"Nikon\0\x02\x10\0\0" + b"maker" * 20)]
    files["nef_like.nef"] = tiff(
        [
            (
                [
                    *rgb_ifd(w, h, 0, [(271, ASCII, "NIKON CORPORATION"), (272, ASCII, "NIKON D850")]),
                    (330, LONG, lambda layout: [layout["ifd", 1], layout["ifd", 2]]),
                    (34665, LONG, at("ifd", 3)),
                ],
                None,
            ),
            ([(254, LONG, [1]), (259, SHORT, [6]), (513, LONG, at("block", 1)), (514, LONG, [len(preview)])], None),
            (cfa_tags, None),
            (exif_ifd, None),
        ],
        [strip, preview, cfa],
    )
    files["arw_like.arw"] = tiff(
        [
            (
                [(259, SHORT, [6]), (513, LONG, at("block", 1)), (514, LONG, [len(thumb)]), (271, ASCII, "SONY")],
                at("ifd", 1),
            ),
            ([*cfa_tags[:6], (273, LONG, at("block", 0)), *cfa_tags[7:]], None),
        ],
        [cfa, thumb],
    )
    files["cr2_like.cr2"] = tiff(
        [
            (
                [(259, SHORT, [6]), (273, LONG, at("block", 0)), (279, LONG, [len(preview)]), (271, ASCII, "Canon")],
                at("ifd", 1),
            ),
            ([(259, SHORT, [6]), (513, LONG, at("block", 1)), (514, LONG, [len(thumb)])], at("ifd", 2)),
            ([*cfa_tags[:6], (273, LONG, at("block", 2)), *cfa_tags[7:], (50752, SHORT, [1, 8, 8])], None),
        ],
        [preview, thumb, cfa],
        header_extra=b"CR\x02\x00\0\0\0\0",
    )
    files["orf_like.orf"] = tiff(
        [(cfa_tags[:6] + [(273, LONG, at("block", 0))] + cfa_tags[7:], None)], [cfa], magic=b"IIRO"
    )
    files["orf_mm.orf"] = tiff(
        [(cfa_tags[:6] + [(273, LONG, at("block", 0))] + cfa_tags[7:], None)], [cfa], order=">", magic=b"MMOR"
    )
    files["rw2_like.rw2"] = tiff(
        [(cfa_tags[:6] + [(273, LONG, at("block", 0))] + cfa_tags[7:], None)], [cfa], magic=b"IIU\0"
    )
    files["dng_raw_only.dng"] = dng(raw_scene())
    small = to_8bit(scene((96, 64), (0.05, 0.05, 0.8)))
    files["dng_preview_gps.dng"] = dng(raw_scene(), small, orientation=6, gps=("S", (1, 2, 3), "W", (4, 5, 6)))
    files["dng_preview16.dng"] = dng(raw_scene(), (small.astype(np.uint16) * 257))
    files["tif_named.dng"] = files["plain_ii.tif"]
    return files


def _hostile() -> dict[str, bytes]:
    w, h = 6, 4
    strip = _pixels(w, h, 1)
    files: dict[str, bytes] = {}
    files["loop_self.tif"] = tiff([(rgb_ifd(w, h, 0), at("ifd", 0))], [strip])
    files["loop_two.tif"] = tiff([(rgb_ifd(w, h, 0), at("ifd", 1)), (rgb_ifd(w, h, 0), at("ifd", 0))], [strip])
    files["subifd_self.tif"] = tiff([(rgb_ifd(w, h, 0, [(330, LONG, at("ifd", 0))]), None)], [strip])
    files["first_out_of_range.tif"] = tiff([(rgb_ifd(w, h, 0), None)], [strip], first=1 << 30)
    files["next_out_of_range.tif"] = tiff([(rgb_ifd(w, h, 0), 1 << 30)], [strip])
    files["strip_out_of_range.tif"] = tiff(
        [(rgb_ifd(w, h, 0)[:5] + [(273, LONG, [1 << 30])] + rgb_ifd(w, h, 0)[6:], None)], [strip]
    )
    files["strip_past_end.dng"] = tiff([(rgb_ifd(w, h, 0)[:8] + [(279, LONG, [len(strip) + 1])], None)], [strip])
    files["subifd_out_of_range.tif"] = tiff([(rgb_ifd(w, h, 0, [(330, LONG, [1 << 30])]), None)], [strip])
    # An out-of-line value past the end: a decoding tag (BitsPerSample) and a metadata tag (Artist).
    good = tiff([(rgb_ifd(w, h, 0, [(315, ASCII, "Ann was here")]), None)], [strip])
    bits_at = good.index(struct.pack("<HHI", 258, SHORT, 3)) + 8
    files["value_out_of_range.tif"] = good[:bits_at] + struct.pack("<I", 1 << 30) + good[bits_at + 4 :]
    artist_at = good.index(struct.pack("<HHI", 315, ASCII, 13)) + 8
    files["metadata_out_of_range.tif"] = good[:artist_at] + struct.pack("<I", 1 << 30) + good[artist_at + 4 :]
    count_at = 8
    files["huge_count.tif"] = good[:count_at] + b"\xff\xff" + good[count_at + 2 :]
    junk = [(40000 + i, ASCII, "ab") for i in range(10_001)]
    files["ten_thousand_entries.dng"] = tiff([(rgb_ifd(w, h, 0) + junk, None)], [strip])
    files["huge_value.tif"] = tiff([(rgb_ifd(w, h, 0, [(320, SHORT, [0] * 3)]), None)], [strip])
    colormap_at = files["huge_value.tif"].index(struct.pack("<HHI", 320, SHORT, 3)) + 4
    files["huge_value.tif"] = (
        files["huge_value.tif"][:colormap_at] + struct.pack("<I", 40 << 20) + files["huge_value.tif"][colormap_at + 4 :]
    )
    files["counts_mismatch.tif"] = tiff(
        [
            (
                rgb_ifd(w, h, 0)[:5]
                + [(273, LONG, lambda layout: [layout["block", 0], layout["block", 0]])]
                + rgb_ifd(w, h, 0)[6:],
                None,
            )
        ],
        [strip],
    )
    files["no_data.tif"] = tiff([([(256, LONG, [w]), (257, LONG, [h])], None)])
    files["unknown_type.tif"] = tiff([(rgb_ifd(w, h, 0) + [(262, 99, b"\0\0\0\0")], None)], [strip])
    files["duplicate_tags.tif"] = tiff([(rgb_ifd(w, h, 0) + [(256, SHORT, [w]), (279, LONG, [8])], None)], [strip])
    files["chain_300.tif"] = tiff(
        [(rgb_ifd(w, h, 0), at("ifd", i + 1) if i < 299 else None) for i in range(300)], [strip]
    )
    files["chain_70.dng"] = tiff([(rgb_ifd(w, h, 0), at("ifd", i + 1) if i < 69 else None) for i in range(70)], [strip])
    files["header_only.tif"] = b"II*\x00\x08\x00"
    files["magic_only.tif"] = b"MM\x00*"
    files["cut_in_strip.tif"] = good[: len(good) - 10]
    files["cut_in_table.dng"] = good[:20]
    files["big_loop.tif"] = tiff([(rgb_ifd(w, h, 0), at("ifd", 0))], [strip], big=True)
    files["big_cut.tif"] = tiff([(rgb_ifd(w, h, 0), None)], [strip], big=True)[:30]
    files["unknown_magic.tif"] = tiff([(rgb_ifd(w, h, 0), None)], [strip], magic=b"II\x2c\x00")
    files["dng_cut.dng"] = dng(raw_scene())[:-5000]
    files["junk.cr2"] = b"not a raw file at all" * 50
    files["junk.nef"] = b"II*\x00" + b"\xff" * 200
    return files


def golden_corpus() -> dict[str, bytes]:
    """File name -> bytes: every format and edge the identity hashers read."""
    plain_jpeg = jpeg([JFIF])
    files: dict[str, bytes] = {
        "plain.jpg": plain_jpeg,
        "meta.jpg": jpeg([JFIF, EXIF_APP1, ICC_APP2, IPTC_APP13, COMMENT]),
        "exif_first.jpg": jpeg([EXIF_APP1]),
        "fill_bytes.jpg": plain_jpeg[:2] + b"\xff\xff" + plain_jpeg[2:],
        "trailer.jpg": plain_jpeg + b"trailing bytes after EOI",
        "no_eoi.jpg": plain_jpeg[:-2],
        "other_scan.jpg": jpeg([JFIF], bytes(range(0x30, 0xA0))),
        "bad_marker.jpg": b"\xff\xd8\xff\xe1\x00\x01" + b"x" * 100,
        "soi_junk.jpg": b"\xff\xd8" + b"junk" * 30,
        "plain.png": png(),
        "meta.png": png(extra=PNG_META),
        "other.png": png(seed=3),
        "bad_chunk.png": png()[:33] + b"\0\0\0\x05b@d!" + png()[33:],
        "cut.png": png()[:40],
        "plain.gif": GIF,
        "meta.gif": GIF_META,
        "no_frame.gif": GIF[:13] + b";",
        "simple.webp": _riff([(b"VP8L", VP8L)]),
        "extended.webp": _riff(
            [
                (b"VP8X", b"\x0c\0\0\0\x03\0\0\x02\0\0"),
                (b"ICCP", b"icc"),
                (b"VP8L", VP8L),
                (b"EXIF", b"II*\0xx"),
                (b"XMP ", b"<x/>"),
            ]
        ),
        "animated.webp": _riff(
            [
                (b"VP8X", b"\x12\0\0\0\x03\0\0\x02\0\0"),
                (b"ANIM", b"\0" * 6),
                (b"ANMF", b"\0" * 16 + VP8L),
                (b"ANMF", b"\1" * 16 + VP8L),
            ]
        ),
        "odd_chunk.webp": _riff([(b"VP8L", VP8L + b"x"), (b"EXIF", b"odd")]),
        "cut.webp": _riff([(b"VP8L", VP8L)])[:30],
        "no_image.webp": _riff([(b"EXIF", b"II*\0xx")]),
        "plain.heic": heif(False),
        "meta.heic": heif(True),
        "other.heic": heif(False, b"HEVCDATB" * 20),
        "bad_offset.heic": heif(False, bad_offset=True),
        "plain.cr3": cr3(b"II*\0exif", b"RAWDATA" * 50),
        "edited.cr3": cr3(b"II*\0exif, longer now" * 5, b"RAWDATA" * 50),
        "photo.bmp": bmp(),
        "plain.raf": raf(plain_jpeg, b"CFA" * 100),
        "edited.raf": raf(jpeg([JFIF, IPTC_APP13]), b"CFA" * 100),
        "jpeg_past_end.raf": raf(plain_jpeg, b"CFA" * 100, jpeg_len=1 << 20),
        "header_only.raf": b"FUJIFILMCCD-RAW 0201" + b"\0" * 60,
        "empty.jpg": b"",
        "text.jpg": b"hello, I am not a picture\n" * 4,
    }
    files |= _tiffs()
    files |= _hostile()
    return files
