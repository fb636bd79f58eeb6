"""A generated corpus of small photo-like test images, good and bad, for the normaliser and end-to-end tests.

``write_corpus(folder)`` writes every file and returns {file name: expectation},
where the expectation is ``OK`` or a substring of the PrepareError reason. Every
good image *displays* (after EXIF orientation) as ``DISPLAY`` pixels wide and
tall with a red block in the top-left corner (``RED_BOX``) and a blue block in
the bottom-right; transparent images are transparent in the bottom-right third.
Images are noise plus gradients plus shapes, never flat colour.
"""

from __future__ import annotations

import io
import os
import random
import struct
import time
import zlib
from pathlib import Path

from PIL import Image, ImageChops, ImageCms, ImageDraw

__all__ = [
    "OK",
    "DISPLAY",
    "RED_BOX",
    "BLUE_BOX",
    "photo",
    "stored_for_orientation",
    "prophoto_profile",
    "app13_iptc",
    "insert_after_soi",
    "write_corpus",
    "hang",
]

OK = "ok"
DISPLAY = (240, 160)
RED_BOX = (0, 0, 60, 40)  # in displayed coordinates (x0, y0, x1, y1)
BLUE_BOX = (180, 120, 240, 160)
GPS_SOUTH_WEST = (-22.9519, -43.2105, 700.0)

# Stored -> displayed is Image.transpose(X) per orientation; these are the inverses.
_INVERSE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def photo(size: tuple[int, int] = DISPLAY, seed: int = 0) -> Image.Image:
    """A photo-like RGB image: gradients, noise and shapes, red block top-left, blue bottom-right."""
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").rotate(90).resize(size)
    blue = Image.radial_gradient("L").resize(size)
    im = Image.merge("RGB", (red, green, blue))
    # Seeded noise: the same call always gives the same pixels (hash tests rely on it).
    noise = Image.frombytes("L", size, random.Random(seed).randbytes(width * height)).convert("RGB")
    im = ImageChops.blend(im, noise, 0.35)
    draw = ImageDraw.Draw(im)
    for i in range(6):
        x, y = (37 * (i + seed) + 70) % width, (53 * i + 30) % height
        draw.ellipse((x, y, x + width // 6, y + height // 5), fill=(40 * i, 200 - 25 * i, 90 + 20 * i))
    sx, sy = width / DISPLAY[0], height / DISPLAY[1]
    draw.rectangle(_scaled(RED_BOX, sx, sy), fill=(230, 20, 20))
    draw.rectangle(_scaled(BLUE_BOX, sx, sy), fill=(20, 20, 230))
    return im


def _scaled(box: tuple[int, int, int, int], sx: float, sy: float) -> tuple[int, int, int, int]:
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx) - 1, round(box[3] * sy) - 1)


def stored_for_orientation(displayed: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores so that applying ``orientation`` displays ``displayed``."""
    method = _INVERSE[orientation]
    return displayed.copy() if method is None else displayed.transpose(method)


def _exif(orientation: int | None = None, gps: tuple[float, float, float] | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    if orientation is not None:
        exif[0x0112] = orientation
    if gps is not None:
        lat, lon, alt = gps
        exif[0x8825] = {
            1: "N" if lat >= 0 else "S",
            2: _dms(abs(lat)),
            3: "E" if lon >= 0 else "W",
            4: _dms(abs(lon)),
            5: b"\x00" if alt >= 0 else b"\x01",
            6: abs(alt),
        }
    return exif.tobytes()


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return (float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4))


def prophoto_profile() -> bytes:
    """A minimal ICC v2 RGB profile with ProPhoto primaries and gamma 1.8, far from sRGB."""

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(struct.pack(">i", round(v * 65536)) for v in (x, y, z))

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, int(1.8 * 256)) + b"\0\0"
    text = b"ProPhoto-like test profile\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 4 + b"\0" * 4 + b"\0" * 3 + b"\0" * 67
    tags = [
        (b"desc", desc),
        (b"cprt", b"text\0\0\0\0public domain\0"),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.7977, 0.2880, 0.0)),
        (b"gXYZ", xyz(0.1352, 0.7119, 0.0)),
        (b"bXYZ", xyz(0.0313, 0.0001, 0.8249)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (
        struct.pack(">I", size)
        + b"\0\0\0\0"
        + struct.pack(">I", 0x02100000)
        + b"mntrRGB XYZ "
        + struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
        + b"acsp"
        + b"\0" * 24
        + struct.pack(">I", 0)
        + struct.pack(">3i", 63190, 65536, 54061)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def app13_iptc(caption: bytes) -> bytes:
    """An APP13 Photoshop segment holding an IPTC caption record."""
    iptc = b"\x1c\x02\x78" + struct.pack(">H", len(caption)) + caption
    resource = b"8BIM\x04\x04\0\0" + struct.pack(">I", len(iptc)) + iptc + b"\0" * (len(iptc) % 2)
    payload = b"Photoshop 3.0\0" + resource
    return b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload


def insert_after_soi(jpeg: bytes, segment: bytes) -> bytes:
    """A JPEG with ``segment`` inserted right after its SOI marker."""
    return jpeg[:2] + segment + jpeg[2:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _rgb16_rows(im: Image.Image) -> list[bytes]:
    """Each row as big-endian 16-bit RGB samples (value * 257 keeps the full range)."""
    raw = im.tobytes()
    width = im.width * 3
    return [b"".join(struct.pack(">H", v * 257) for v in raw[y * width : (y + 1) * width]) for y in range(im.height)]


def _png16(im: Image.Image) -> bytes:
    rows = b"".join(b"\0" + row for row in _rgb16_rows(im))
    ihdr = struct.pack(">IIBBBBB", im.width, im.height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(rows))
        + _png_chunk(b"IEND", b"")
    )


def _tiff_rgb16(im: Image.Image) -> bytes:
    """An uncompressed big-endian RGB TIFF with 16 bits per sample."""
    pixels = b"".join(_rgb16_rows(im))
    entries = [
        (256, 4, 1, im.width),
        (257, 4, 1, im.height),
        (258, 3, 3, 8 + 2 + 12 * 10 + 4),
        (259, 3, 1, 1),
        (262, 3, 1, 2),
        (273, 4, 1, 8 + 2 + 12 * 10 + 4 + 6),
        (277, 3, 1, 3),
        (278, 4, 1, im.height),
        (279, 4, 1, len(pixels)),
        (284, 3, 1, 1),
    ]
    ifd = struct.pack(">H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack(">HI", value, 0)[:4] if kind == 3 and count == 1 else struct.pack(">I", value)
        ifd += struct.pack(">HHI", tag, kind, count) + packed
    ifd += struct.pack(">I", 0)
    return b"MM\0*" + struct.pack(">I", 8) + ifd + struct.pack(">3H", 16, 16, 16) + pixels


def _png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _png_chunk(b"IEND", b"")
    )


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def _transparent(im: Image.Image) -> Image.Image:
    """RGBA copy, fully transparent in the bottom-right third, half transparent in the middle band."""
    rgba = im.convert("RGBA")
    alpha = Image.new("L", im.size, 255)
    draw = ImageDraw.Draw(alpha)
    w, h = im.size
    draw.rectangle((w * 2 // 3, h * 2 // 3, w, h), fill=0)
    rgba.putalpha(alpha)
    return rgba


def _files() -> dict[str, tuple[bytes, str]]:
    base = photo()
    files: dict[str, tuple[bytes, str]] = {}
    for n in range(1, 9):
        stored = stored_for_orientation(base, n)
        files[f"orient_{n}.jpg"] = (_save(stored, "JPEG", quality=92, exif=_exif(n)), OK)
    cmyk = base.convert("CMYK")
    files["cmyk.jpg"] = (_save(cmyk, "JPEG", quality=92), OK)
    files["progressive.jpg"] = (_save(base, "JPEG", quality=90, progressive=True), OK)
    profile = prophoto_profile()
    wide = ImageCms.profileToProfile(
        base, ImageCms.createProfile("sRGB"), ImageCms.ImageCmsProfile(io.BytesIO(profile)), outputMode="RGB"
    )
    files["icc_prophoto.jpg"] = (_save(wide, "JPEG", quality=95, icc_profile=profile), OK)
    files["gps.jpg"] = (_save(base, "JPEG", quality=90, exif=_exif(1, GPS_SOUTH_WEST)), OK)
    meta = _save(
        base,
        "JPEG",
        quality=90,
        exif=_exif(1),
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>secret xmp</x:xmpmeta>",
        comment=b"secret comment text",
        icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(),
    )
    files["metadata.jpg"] = (insert_after_soi(meta, app13_iptc(b"secret iptc caption")), OK)
    files["gray.jpg"] = (_save(base.convert("L"), "JPEG", quality=90), OK)
    files["rgba.png"] = (_save(_transparent(base), "PNG"), OK)
    palette = base.quantize(64)
    palette.info["transparency"] = palette.getpixel((DISPLAY[0] - 1, DISPLAY[1] - 1))
    files["palette_trns.png"] = (_save(palette, "PNG", transparency=palette.info["transparency"]), OK)
    files["la.png"] = (_save(_transparent(base).convert("LA"), "PNG"), OK)
    gray16 = base.convert("L").convert("I").point(lambda v: v * 257).convert("I;16")
    files["gray16.png"] = (_save(gray16, "PNG"), OK)
    files["rgb16.png"] = (_png16(base), OK)
    files["rgb16.tif"] = (_tiff_rgb16(base), OK)
    second = photo(seed=3).transpose(Image.Transpose.ROTATE_180)
    files["multipage.tif"] = (_save(base, "TIFF", save_all=True, append_images=[second]), OK)
    files["animated.gif"] = (_save(base, "GIF", save_all=True, append_images=[second], duration=100, loop=0), OK)
    files["photo.webp"] = (_save(base, "WEBP", quality=90), OK)
    files["photo.bmp"] = (_save(base, "BMP"), OK)
    files["png_named.jpg"] = (_save(base, "PNG"), OK)
    files["big.jpg"] = (_save(photo((2400, 1600)), "JPEG", quality=90), OK)
    whole = _save(base, "JPEG", quality=90)
    files["truncated.jpg"] = (whole[: len(whole) // 2], "truncated or corrupt image")
    files["empty.jpg"] = (b"", "empty file")
    files["text.jpg"] = (b"This is not a picture, just some notes.\n" * 20, "not an image")
    files["bomb.png"] = (_png_bomb(200_000, 200_000), "image too large to decode safely")
    files["bomb_120mp.png"] = (_png_bomb(12_000, 10_000), "image too large to decode safely (120 MP > 100 MP limit)")
    try:
        import pillow_heif
    except ImportError:
        pass
    else:
        files["photo.heic"] = (_heic(base, pillow_heif), OK)
    return files


def _heic(im: Image.Image, pillow_heif: object) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(im).save(out, quality=90)  # type: ignore[attr-defined]
    return out.getvalue()


#: A file name that is not valid UTF-8 (str with surrogateescape on POSIX).
NON_UTF8_NAME = os.fsdecode(b"caf\xe9 photo.jpg")


def write_corpus(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write the corpus into ``folder``; {file name: "ok" or a substring of the expected failure reason}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expectations: dict[str, str] = {}
    files = _files()
    files[NON_UTF8_NAME] = files["orient_1.jpg"]
    for name, (data, expectation) in files.items():
        (folder / name).write_bytes(data)
        expectations[name] = expectation
    return expectations


def hang(path: str, options: object) -> object:
    """A stand-in for prepare() that never finishes for files named *hang*; for Preparer time-limit tests."""
    if "hang" in os.path.basename(path):
        time.sleep(3600)
    from tagger.prepare.normalise import prepare

    return prepare(path, options)  # type: ignore[arg-type]
