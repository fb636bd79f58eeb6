"""Camera RAW end to end: DNG files written here byte by byte, opened by LibRaw, prepared by tagger.

Each DNG holds a 16-bit RGGB mosaic (uncompressed, LibRaw's packed DNG loader) and, for
most tests, a preview in IFD0. The preview shows a red block on blue, the raw data the same
red block on green, so the background colour says which path ran and the block's position
says how the picture was turned. The colour matrix makes the camera's space linear sRGB,
so the mosaic demosaics back to the colours it was cut from.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rawpy
from PIL import Image

from tagger.prepare.normalise import Prepared, PrepareError, PrepareOptions, prepare

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

NOT_RAW = "not an image (or a camera RAW format this LibRaw does not know)"
CORRUPT = "truncated or corrupt image"

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


def _tiff(ifds: Sequence[Sequence[Entry]], blocks: Sequence[bytes]) -> bytes:
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
    return _tiff(ifds, blocks)


def raw_scene() -> np.ndarray:
    return scene(RAW_SIZE, RAW_BACKGROUND)


def preview_scene() -> np.ndarray:
    return scene(PREVIEW_SIZE, PREVIEW_BACKGROUND)


# --- reading results -----------------------------------------------------------------------


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def pixels(prepared: Prepared) -> np.ndarray:
    with Image.open(io.BytesIO(prepared.data)) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert im.size == (prepared.width, prepared.height)
        return np.asarray(im).astype(int)


def marker_centre(rgb: np.ndarray) -> tuple[float, float]:
    """Where the red block sits, as fractions of width and height."""
    red = (rgb[..., 0] - rgb[..., 1] - rgb[..., 2]) > 100
    ys, xs = np.nonzero(red)
    assert xs.size > 0.03 * red.size, "no red block in the picture"
    return (xs.mean() + 0.5) / rgb.shape[1], (ys.mean() + 0.5) / rgb.shape[0]


def background(rgb: np.ndarray) -> str:
    """The dominant channel of the bottom half, away from the block in any orientation."""
    height, width = rgb.shape[:2]
    mean = rgb[height * 3 // 8 : height * 5 // 8, width * 3 // 8 : width * 5 // 8].reshape(-1, 3).mean(axis=0)
    return "RGB"[int(mean.argmax())]


def displayed(orientation: int, x: float, y: float) -> tuple[float, float]:
    """Where stored point (x, y) shows once EXIF ``orientation`` is applied (TIFF 6.0 / EXIF 2.3)."""
    return {
        1: (x, y),
        2: (1 - x, y),  # mirrored left-right
        3: (1 - x, 1 - y),  # 180
        4: (x, 1 - y),  # mirrored top-bottom
        5: (y, x),  # transposed
        6: (1 - y, x),  # 90 clockwise
        7: (1 - y, 1 - x),  # transversed
        8: (y, 1 - x),  # 90 counter-clockwise
    }[orientation]


def assert_upright(rgb: np.ndarray, orientation: int, stored_size: tuple[int, int]) -> None:
    width, height = stored_size
    assert (rgb.shape[1], rgb.shape[0]) == ((height, width) if orientation >= 5 else (width, height))
    found = marker_centre(rgb)
    expected = displayed(orientation, *MARKER_CENTRE)
    assert found == pytest.approx(expected, abs=0.03), f"orientation {orientation}: block at {found}"


# --- LibRaw reads the hand-made files as written ---------------------------------------------


def test_libraw_reads_the_dng_and_its_jpeg_preview() -> None:
    preview = jpeg(preview_scene())
    data = dng(raw_scene(), preview)
    with rawpy.imread(io.BytesIO(data)) as raw:
        assert (raw.sizes.width, raw.sizes.height) == RAW_SIZE
        assert raw.sizes.flip == 0
        assert raw.color_desc == b"RGBG"
        assert raw.raw_pattern.tolist() == [[0, 1], [3, 2]]  # R G / G B
        assert np.array_equal(raw.raw_image, mosaic(raw_scene()))
        assert raw.camera_whitebalance[:3] == [1.0, 1.0, 1.0]
        thumb = raw.extract_thumb()
    assert thumb.format == rawpy.ThumbFormat.JPEG
    # LibRaw may add an EXIF segment in front; the picture itself is the one embedded.
    with Image.open(io.BytesIO(thumb.data)) as got, Image.open(io.BytesIO(preview)) as embedded:
        assert got.size == PREVIEW_SIZE
        assert np.array_equal(np.asarray(got), np.asarray(embedded))


def test_libraw_finds_no_preview_in_a_raw_only_dng() -> None:
    with rawpy.imread(io.BytesIO(dng(raw_scene()))) as raw:
        assert np.array_equal(raw.raw_image, mosaic(raw_scene()))
        with pytest.raises(rawpy.LibRawNoThumbnailError):
            raw.extract_thumb()


# --- which picture prepare() sends -----------------------------------------------------------


def test_prepare_sends_the_embedded_preview(tmp_path: Path) -> None:
    path = write(tmp_path, "IMG_0001.dng", dng(raw_scene(), jpeg(preview_scene())))
    prepared = prepare(path, PrepareOptions())
    rgb = pixels(prepared)
    assert (prepared.width, prepared.height) == PREVIEW_SIZE
    assert background(rgb) == "B"  # the preview's blue, not the raw data's green
    assert_upright(rgb, 1, PREVIEW_SIZE)


def test_prepare_shrinks_a_large_preview(tmp_path: Path) -> None:
    path = write(tmp_path, "IMG_0002.dng", dng(raw_scene(), jpeg(preview_scene())))
    prepared = prepare(path, PrepareOptions(max_edge=400))
    assert (prepared.width, prepared.height) == (400, 300)
    assert background(pixels(prepared)) == "B"


def test_prepare_demosaics_the_raw_data_when_there_is_no_preview(tmp_path: Path) -> None:
    path = write(tmp_path, "IMG_0003.dng", dng(raw_scene()))
    prepared = prepare(path, PrepareOptions())
    rgb = pixels(prepared)
    assert (prepared.width, prepared.height) == (RAW_SIZE[0] // 2, RAW_SIZE[1] // 2)  # half-size decode
    assert_upright(rgb, 1, (RAW_SIZE[0] // 2, RAW_SIZE[1] // 2))
    height, width = rgb.shape[:2]
    # Inside the block (clear of its demosaiced edges) red dominates; around it, green does.
    block = rgb[2 : height // 4 - 2, width // 4 + 2 : width // 2 - 2].reshape(-1, 3).mean(axis=0)
    assert block[0] > 150 and block[0] > 2 * block[1] and block[0] > 2 * block[2], block
    field = rgb[height // 2 :, :].reshape(-1, 3).mean(axis=0)
    assert field[1] > 150 and field[1] > 2 * field[0] and field[1] > 2 * field[2], field


def test_an_index_sized_preview_is_passed_over_for_the_raw_data(tmp_path: Path) -> None:
    small = jpeg(scene((160, 120), PREVIEW_BACKGROUND))
    path = write(tmp_path, "IMG_0004.dng", dng(raw_scene(), small))
    prepared = prepare(path, PrepareOptions())
    assert (prepared.width, prepared.height) == (128, 96)
    assert background(pixels(prepared)) == "G"


def test_a_damaged_preview_falls_back_to_the_raw_data(tmp_path: Path) -> None:
    whole = jpeg(preview_scene())
    # Header intact, so LibRaw and Pillow both accept it; the scan data stops half way.
    path = write(tmp_path, "IMG_0005.dng", dng(raw_scene(), whole[: len(whole) // 2]))
    rgb = pixels(prepare(path, PrepareOptions()))
    assert background(rgb) == "G"
    assert_upright(rgb, 1, (128, 96))


@pytest.mark.parametrize("kind", ["rgb8", "gray8", "rgb16"])
def test_bitmap_previews(tmp_path: Path, kind: str) -> None:
    linear = preview_scene()
    preview = {
        "rgb8": to_8bit(linear),
        "gray8": to_8bit(linear)[..., 0],
        "rgb16": np.round(linear * 65535).astype(np.uint16),
    }[kind]
    path = write(tmp_path, f"{kind}.dng", dng(raw_scene(), preview))
    with rawpy.imread(path) as raw:
        assert raw.extract_thumb().format == rawpy.ThumbFormat.BITMAP
    prepared = prepare(path, PrepareOptions())
    rgb = pixels(prepared)
    assert (prepared.width, prepared.height) == PREVIEW_SIZE
    if kind == "gray8":
        assert np.abs(rgb[..., 0] - rgb[..., 2]).max() <= 2  # grey, and still the preview's size
    else:
        assert background(rgb) == "B"
        assert_upright(rgb, 1, PREVIEW_SIZE)


# --- orientation ---------------------------------------------------------------------------


def test_orientation_6_turns_the_picture_clockwise(tmp_path: Path) -> None:
    path = write(tmp_path, "portrait.dng", dng(raw_scene(), jpeg(preview_scene()), orientation=6))
    with rawpy.imread(path) as raw:
        assert raw.sizes.flip == 6
    rgb = pixels(prepare(path, PrepareOptions()))
    assert rgb.shape[:2] == (640, 480)  # now portrait
    assert background(rgb) == "B"
    x, y = marker_centre(rgb)
    assert x > 0.75 and 0.25 < y < 0.5  # the top edge went to the right


PREVIEWS: dict[str, Callable[[], bytes | np.ndarray | None]] = {
    "raw data": lambda: None,
    "jpeg preview": lambda: jpeg(preview_scene()),
    "jpeg preview with its own exif": lambda: jpeg_with_own_exif(preview_scene()),
    "8-bit bitmap preview": lambda: to_8bit(preview_scene()),
    "16-bit bitmap preview": lambda: np.round(preview_scene() * 65535).astype(np.uint16),
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("source", list(PREVIEWS))
def test_every_orientation_comes_out_upright(tmp_path: Path, source: str, orientation: int) -> None:
    path = write(tmp_path, "turned.dng", dng(raw_scene(), PREVIEWS[source](), orientation))
    rgb = pixels(prepare(path, PrepareOptions()))
    if background(rgb) == "B":
        assert source != "raw data"
        assert_upright(rgb, orientation, PREVIEW_SIZE)
    else:
        assert_upright(rgb, orientation, (RAW_SIZE[0] // 2, RAW_SIZE[1] // 2))
    if source.startswith("jpeg"):
        assert background(rgb) == "B"  # a turned JPEG preview is still used, not decoded around


# --- location ------------------------------------------------------------------------------


@pytest.mark.parametrize("with_preview", [True, False], ids=["preview in IFD0", "raw data in IFD0"])
def test_gps_location_is_read_from_the_dng(tmp_path: Path, with_preview: bool) -> None:
    gps = ("N", (48, 51, 30), "W", (2, 17, 40))
    preview = jpeg(preview_scene()) if with_preview else None
    path = write(tmp_path, "located.dng", dng(raw_scene(), preview, gps=gps))
    located = prepare(path, PrepareOptions(send_location=True))
    lat, lon, alt = located.location or (None, None, None)
    assert lat == pytest.approx(48 + 51 / 60 + 30 / 3600)
    assert lon == pytest.approx(-(2 + 17 / 60 + 40 / 3600))
    assert alt is None
    assert prepare(path, PrepareOptions()).location is None


# --- failures ------------------------------------------------------------------------------


def test_truncated_raw_data_fails_as_corrupt(tmp_path: Path) -> None:
    data = dng(raw_scene())
    for keep in (len(data) * 3 // 5, 100, 8):
        path = write(tmp_path, f"cut{keep}.dng", data[:keep])
        with pytest.raises(PrepareError) as caught:
            prepare(path, PrepareOptions())
        assert caught.value.reason == CORRUPT


def test_a_dng_cut_inside_its_preview_fails_as_corrupt(tmp_path: Path) -> None:
    preview = jpeg(preview_scene())
    data = dng(raw_scene(), preview)
    start = data.index(preview[:64])
    path = write(tmp_path, "cut.dng", data[: start + len(preview) // 2])
    with pytest.raises(PrepareError) as caught:
        prepare(path, PrepareOptions())
    assert caught.value.reason == CORRUPT


def test_raw_data_over_the_pixel_limit_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "big.dng", dng(raw_scene()))
    with pytest.raises(PrepareError) as caught:
        prepare(path, PrepareOptions(max_pixels=40_000))
    assert caught.value.reason.startswith("image too large to decode safely")


@pytest.mark.parametrize(
    "name, data",
    [
        ("junk.cr3", bytes(range(256)) * 20),
        ("junk-with-header.cr3", b"\0\0\0\x18ftypcrx \0\0\0\x01" + bytes(range(256)) * 20),
        ("junk.dng", b"II*\0\x08\0\0\0" + b"\xff" * 4000),
    ],
)
def test_junk_with_a_raw_name_fails_cleanly(tmp_path: Path, name: str, data: bytes) -> None:
    with pytest.raises(PrepareError) as caught:
        prepare(write(tmp_path, name, data), PrepareOptions())
    assert caught.value.reason == NOT_RAW


def test_the_data_extent_of_a_dng_is_where_its_last_strip_ends() -> None:
    from tagger.prepare.tiff import data_extent

    whole = dng(raw_scene(), jpeg(preview_scene()))
    assert data_extent(whole) == len(whole)
    assert data_extent(whole[: len(whole) - 10]) > len(whole) - 10
    assert data_extent(b"not a tiff at all") is None
