"""Camera RAW files written byte by byte for the tests: TIFF structures, DNGs with a mosaic and a preview.

Each DNG holds a 16-bit RGGB mosaic (uncompressed, LibRaw's packed DNG loader) and, when asked, a
preview in IFD0. The preview shows a red block on blue, the raw data the same red block on green, so
the background colour says which path ran and the block's position says how the picture was turned.
The colour matrix makes the camera's space linear sRGB, so the mosaic demosaics back to the colours
it was cut from.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
_PACK = {BYTE: "B", SHORT: "H", LONG: "I"}

RAW_SIZE = (256, 192)
PREVIEW_SIZE = (640, 480)
PREVIEW_BACKGROUND = (0.05, 0.05, 0.8)
RAW_BACKGROUND = (0.05, 0.5, 0.05)
MARKER = (0.8, 0.03, 0.03)
# The red block covers x in [1/4, 1/2) and y in [0, 1/4) of the stored picture: off every
# axis of symmetry, so each of the eight orientations puts it somewhere else.
MARKER_CENTRE = (0.375, 0.125)

# XYZ -> linear sRGB (D65): with this as ColorMatrix1 the camera's native space is linear sRGB.
XYZ_TO_SRGB = ((3.2406, -1.5372, -0.4986), (-0.9689, 1.8758, 0.0415), (0.0557, -0.2040, 1.0570))


Entry = tuple[int, int, Any]  # tag, type, values (or a function of the layout giving them)


# --- writing TIFF and DNG ---------------------------------------------------------------


def _ifd(entries: Sequence[Entry], start: int) -> bytes:
    """One little-endian IFD at file offset ``start``, its out-of-line values right after it."""
    entries = sorted(entries, key=lambda entry: entry[0])
    data_start = start + 2 + 12 * len(entries) + 4
    table, extra = b"", b""
    for tag, kind, values in entries:
        if kind == ASCII:
            raw = values.encode("ascii") + b"\0"
            count = len(raw)
        elif kind in (RATIONAL, SRATIONAL):
            count = len(values)
            raw = b"".join(struct.pack("<II" if kind == RATIONAL else "<ii", *pair) for pair in values)
        else:
            count = len(values)
            raw = struct.pack(f"<{count}{_PACK[kind]}", *values)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", data_start + len(extra))
            extra += raw + b"\0" * (len(raw) % 2)
        table += struct.pack("<HHI", tag, kind, count) + field
    return struct.pack("<H", len(entries)) + table + struct.pack("<I", 0) + extra


def tiff(ifds: Sequence[Sequence[Entry]], blocks: Sequence[bytes]) -> bytes:
    """Header, the IFDs in order (IFD0 first), then the data blocks.

    Values given as functions receive the layout: ``("ifd", i)`` and ``("block", j)`` -> offset.
    """

    def build(layout: dict[tuple[str, int], int]) -> tuple[bytes, dict[tuple[str, int], int]]:
        out, found, pos = [b"II*\0" + struct.pack("<I", 8)], {}, 8
        for i, entries in enumerate(ifds):
            found["ifd", i] = pos
            resolved = [(tag, kind, v(layout) if callable(v) else v) for tag, kind, v in entries]
            out.append(_ifd(resolved, pos))
            pos += len(out[-1])
        for j, block in enumerate(blocks):
            found["block", j] = pos
            out.append(block + b"\0" * (len(block) % 2))
            pos += len(out[-1])
        return b"".join(out), found

    # Offsets are fixed-width, so a first pass with zeros gives the real layout.
    zeros = {("ifd", i): 0 for i in range(len(ifds))} | {("block", j): 0 for j in range(len(blocks))}
    _, layout = build(zeros)
    data, check = build(layout)
    assert check == layout
    return data


def _at(key: str, index: int) -> Callable[[dict[tuple[str, int], int]], list[int]]:
    return lambda layout: [layout[key, index]]


def mosaic(rgb: np.ndarray) -> np.ndarray:
    """An RGGB Bayer mosaic (16-bit) of a linear RGB image in [0, 1]."""
    samples = np.clip(np.round(rgb * 65535), 0, 65535).astype(np.uint16)
    cfa = np.empty(rgb.shape[:2], dtype=np.uint16)
    cfa[0::2, 0::2] = samples[0::2, 0::2, 0]
    cfa[0::2, 1::2] = samples[0::2, 1::2, 1]
    cfa[1::2, 0::2] = samples[1::2, 0::2, 1]
    cfa[1::2, 1::2] = samples[1::2, 1::2, 2]
    return cfa


def scene(size: tuple[int, int], background: tuple[float, float, float]) -> np.ndarray:
    """A linear RGB picture: the background with the red block at the top, left of centre."""
    width, height = size
    rgb = np.empty((height, width, 3))
    rgb[:] = background
    rgb[: height // 4, width // 4 : width // 2] = MARKER
    return rgb


def to_8bit(rgb: np.ndarray) -> np.ndarray:
    return np.round(np.clip(rgb, 0, 1) ** (1 / 2.2) * 255).astype(np.uint8)


def jpeg(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(to_8bit(rgb)).save(out, "JPEG", quality=90)
    return out.getvalue()


def jpeg_with_own_exif(rgb: np.ndarray) -> bytes:
    """A JPEG opening with an EXIF segment (no orientation), as many cameras write previews.

    LibRaw passes such a preview through untouched instead of adding its own EXIF.
    """
    plain = jpeg(rgb)
    assert plain[2:4] == b"\xff\xe0"  # Pillow's JFIF segment, replaced below
    jfif_end = 4 + struct.unpack(">H", plain[4:6])[0]
    exif = Image.Exif()
    exif[0x010F] = "Camera maker"
    body = b"Exif\0\0" + exif.tobytes()
    return plain[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + plain[jfif_end:]


def dng(
    raw_rgb: np.ndarray,
    preview: bytes | np.ndarray | None = None,
    orientation: int = 1,
    gps: tuple[str, tuple[int, int, int], str, tuple[int, int, int]] | None = None,
) -> bytes:
    """A DNG 1.4: the mosaic of ``raw_rgb``; with ``preview`` (JPEG bytes or an 8/16-bit bitmap)
    as IFD0 and the raw data in a SubIFD, else the raw data as IFD0."""
    height, width = raw_rgb.shape[:2]
    strip = mosaic(raw_rgb).astype("<u2").tobytes()
    shared: list[Entry] = [
        (271, ASCII, "Tagger"),
        (272, ASCII, "Synthetic"),
        (274, SHORT, [orientation]),
        (50706, BYTE, [1, 4, 0, 0]),  # DNGVersion
        (50707, BYTE, [1, 1, 0, 0]),  # DNGBackwardVersion
        (50708, ASCII, "Tagger Synthetic"),  # UniqueCameraModel
        (50721, SRATIONAL, [(round(v * 10000), 10000) for row in XYZ_TO_SRGB for v in row]),  # ColorMatrix1
        (50728, RATIONAL, [(1, 1)] * 3),  # AsShotNeutral
        (50778, SHORT, [21]),  # CalibrationIlluminant1: D65
    ]
    ifds: list[list[Entry]] = []
    blocks: list[bytes] = []

    def raw_ifd(block: int) -> list[Entry]:
        return [
            (254, LONG, [0]),  # NewSubFileType: the main image
            (256, LONG, [width]),
            (257, LONG, [height]),
            (258, SHORT, [16]),
            (259, SHORT, [1]),
            (262, SHORT, [32803]),  # CFA
            (273, LONG, _at("block", block)),
            (277, SHORT, [1]),
            (278, LONG, [height]),
            (279, LONG, [len(strip)]),
            (284, SHORT, [1]),
            (33421, SHORT, [2, 2]),  # CFARepeatPatternDim
            (33422, BYTE, [0, 1, 1, 2]),  # CFAPattern: RGGB
            (50714, LONG, [0]),  # BlackLevel
            (50717, LONG, [65535]),  # WhiteLevel
        ]

    if preview is None:
        ifds.append(shared + raw_ifd(0))
        blocks.append(strip)
    else:
        if isinstance(preview, bytes):
            with Image.open(io.BytesIO(preview)) as im:
                (pw, ph), bits, compression, photometric = im.size, [8, 8, 8], 7, 6  # JPEG, YCbCr
            data = preview
        else:
            ph, pw = preview.shape[:2]
            samples = 1 if preview.ndim == 2 else preview.shape[2]
            bits = [preview.dtype.itemsize * 8] * samples
            compression, photometric = 1, 2 if samples == 3 else 1
            data = preview.astype(preview.dtype.newbyteorder("<")).tobytes()
        ifds.append(
            shared
            + [
                (254, LONG, [1]),  # NewSubFileType: reduced-resolution copy
                (256, LONG, [pw]),
                (257, LONG, [ph]),
                (258, SHORT, bits),
                (259, SHORT, [compression]),
                (262, SHORT, [photometric]),
                (273, LONG, _at("block", 0)),
                (277, SHORT, [len(bits)]),
                (278, LONG, [ph]),
                (279, LONG, [len(data)]),
                (284, SHORT, [1]),
                (330, LONG, _at("ifd", 1)),  # SubIFDs
            ]
        )
        ifds.append(raw_ifd(1))
        blocks += [data, strip]
    if gps is not None:
        lat_ref, lat, lon_ref, lon = gps
        ifds[0].append((0x8825, LONG, _at("ifd", len(ifds))))
        ifds.append(
            [
                (0, BYTE, [2, 3, 0, 0]),
                (1, ASCII, lat_ref),
                (2, RATIONAL, [(v, 1) for v in lat]),
                (3, ASCII, lon_ref),
                (4, RATIONAL, [(v, 1) for v in lon]),
            ]
        )
    return tiff(ifds, blocks)


def raw_scene() -> np.ndarray:
    return scene(RAW_SIZE, RAW_BACKGROUND)


def preview_scene() -> np.ndarray:
    return scene(PREVIEW_SIZE, PREVIEW_BACKGROUND)
