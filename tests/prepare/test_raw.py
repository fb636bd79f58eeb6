"""Camera RAW end to end: DNG files written byte by byte (``rawfiles``), opened by LibRaw, prepared by tagger.

The preview shows a red block on blue, the raw data the same red block on green, so the background
colour says which path ran and the block's position says how the picture was turned.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image
from rawfiles import (
    MARKER_CENTRE,
    PREVIEW_BACKGROUND,
    PREVIEW_SIZE,
    RAW_SIZE,
    dng,
    jpeg,
    jpeg_with_own_exif,
    mosaic,
    preview_scene,
    raw_scene,
    scene,
    to_8bit,
)

from tagger.prepare.normalise import Prepared, PrepareError, PrepareOptions, prepare

NOT_RAW = "not an image (or a camera RAW format this LibRaw does not know)"
CORRUPT = "truncated or corrupt image"


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
