"""Decoding internals of the normaliser: open by content, shrink early, then fix colour and orientation.

Everything here works on bytes already read into memory and returns a small
8-bit RGB image; ``tagger.prepare.normalise`` owns files, errors and encoding.
"""

from __future__ import annotations

import io
import math
import re
import threading
import warnings
from typing import Any

from PIL import Image, ImageCms, UnidentifiedImageError

from tagger.prepare.formats import RAW_EXTENSIONS, SNIFF_BYTES, is_avif, register_heif, sniff
from tagger.prepare.tiff import data_extent

__all__ = ["DecodeFailure", "Decoded", "decode", "draft_scale"]

# Only the parsers a photo archive needs; the rest of Pillow's zoo is attack surface.
# (Pillow's JPEG opener also yields MPO files; HEIF exists once pillow-heif registers it.)
_PILLOW_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "GIF", "BMP", "AVIF", "HEIF")

HEIC_MISSING = "HEIC support not installed: pip install 'tagger[heic]'"
RAW_MISSING = "camera RAW support not installed: pip install 'tagger[raw]'"
CORRUPT = "truncated or corrupt image"

# Landing this close under the target after a DCT-domain reduction is accepted:
# it saves a decode at twice the resolution and the whole resampling pass.
_DRAFT_SLACK = 0.9

# EXIF orientation -> the transpose that displays the image upright.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# LibRaw's sizes.flip -> EXIF orientation: the table LibRaw itself uses when it writes an
# orientation tag, so mirrored files (flip 1, 2, 4, 7) come out mirrored back too.
_LIBRAW_FLIP = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}

_ORIENTATION_TAG = 0x0112
_GPS_IFD = 0x8825
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# LittleCMS transforms keep a one-pixel cache, so each thread builds its own.
_local = threading.local()
# Our own max_pixels check, made from the header before decoding, replaces Pillow's global warning.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class DecodeFailure(Exception):
    """A file that cannot be prepared, with the sentence a person reads."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Decoded:
    """A decoded, shrunk, upright RGB image and the location its EXIF carried."""

    __slots__ = ("image", "location")

    def __init__(self, image: Image.Image, location: tuple[float, float, float | None] | None) -> None:
        self.image = image
        self.location = location


def decode(data: bytes, name: str, max_edge: int, max_pixels: int, want_location: bool) -> Decoded:
    """Decode ``data`` (the bytes of file ``name``) into a small upright RGB image."""
    if not data:
        raise DecodeFailure("empty file")
    kind = sniff(data[:SNIFF_BYTES])
    dot = name.rfind(".")
    ext = name[dot:].lower() if dot > 0 else ""
    if kind == "raw" or (kind in ("tiff", None) and ext in RAW_EXTENSIONS):
        return _decode_raw(data, max_edge, max_pixels, want_location)
    if kind == "heif":
        _ensure_heif(data[:SNIFF_BYTES])
    im = _open(data, max_pixels)
    exif = _read_exif(im)
    orientation = _orientation(exif)
    location = _location(exif) if want_location else None
    return Decoded(_finish(im, orientation, max_edge), location)


def draft_scale(width: int, height: int, max_edge: int) -> int:
    """The largest JPEG DCT reduction (1, 2, 4 or 8) worth decoding at for ``max_edge``."""
    long_edge, short_edge = max(width, height), min(width, height)
    for scale in (8, 4, 2):
        reduced = -(-long_edge // scale)
        if short_edge // scale >= 1 and reduced >= max_edge * _DRAFT_SLACK:
            return scale
    return 1


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data), formats=_formats())
    except Image.DecompressionBombError as exc:
        raise DecodeFailure(_too_large(_bomb_pixels(str(exc)), max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise DecodeFailure("not an image") from exc
    except Exception as exc:  # Pillow's header parsers raise many kinds on damaged files
        raise DecodeFailure(CORRUPT) from exc
    _check_size(im.size, max_pixels)
    return im


def _formats() -> list[str]:
    Image.init()
    return [name for name in _PILLOW_FORMATS if name in Image.OPEN]


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise DecodeFailure(CORRUPT)
    if width * height > max_pixels:
        raise DecodeFailure(_too_large(width * height, max_pixels))


def _too_large(pixels: int | None, max_pixels: int) -> str:
    limit = f"{max_pixels / 1e6:g} MP limit"
    if pixels is None:
        return f"image too large to decode safely (over the {limit})"
    return f"image too large to decode safely ({pixels / 1e6:.0f} MP > {limit})"


def _bomb_pixels(message: str) -> int | None:
    found = re.search(r"\((\d+) pixels\)", message)
    return int(found.group(1)) if found else None


def _finish(im: Image.Image, orientation: int, max_edge: int) -> Image.Image:
    """Shrink, flatten to RGB in sRGB and turn upright; every decode error becomes CORRUPT."""
    icc = im.info.get("icc_profile")
    try:
        if im.format in ("JPEG", "MPO"):
            scale = draft_scale(im.width, im.height, max_edge)
            if scale > 1:
                im.draft("RGB", (im.width // scale, im.height // scale))
        im.load()
        im = _working_mode(im)
        im = _shrink(im, max_edge)
        im = _flatten(im)
        im = _to_srgb(im, icc)
        if orientation in _TRANSPOSE:
            im = im.transpose(_TRANSPOSE[orientation])
    except DecodeFailure:
        raise
    except Exception as exc:
        raise DecodeFailure(CORRUPT) from exc
    return im


def _shrink(im: Image.Image, max_edge: int) -> Image.Image:
    """Fit the long edge to ``max_edge``: an integer box reduction first, bicubic for the rest."""
    width, height = im.size
    if max(width, height) <= max_edge:
        return im
    ratio = max_edge / max(width, height)
    target = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    # A box reduction by an integer costs a tenth of Lanczos over the full image, and what
    # remains is under 2x, where bicubic (scaled to the ratio, so antialiased) matches Lanczos
    # by eye and costs a quarter less.
    factor = min(width // target[0], height // target[1])
    if factor >= 2:
        im = im.reduce(factor)
    return im.resize(target, Image.Resampling.BICUBIC) if im.size != target else im


def _working_mode(im: Image.Image) -> Image.Image:
    """A mode Pillow can resize well: RGB, RGBA, L, LA or CMYK."""
    mode = im.mode
    has_key = "transparency" in im.info
    if mode in ("RGBA", "LA") or (mode in ("RGB", "L", "CMYK") and not has_key):
        return im
    if mode.startswith("I;16") or mode == "I":
        # Scale 16-bit samples into 8 bits; a plain convert would clip at 255.
        return im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("P", "PA", "RGB", "L", "La", "RGBa") and (has_key or mode in ("PA", "La", "RGBa")):
        return im.convert("RGBA")
    if mode in ("1", "F"):
        return im.convert("L")
    return im.convert("RGB")


def _flatten(im: Image.Image) -> Image.Image:
    """Composite transparent images on white."""
    if im.mode not in ("RGBA", "LA"):
        return im
    base = Image.new(im.mode[:-1], im.size, 255 if im.mode == "LA" else (255, 255, 255))
    base.paste(im.convert(im.mode[:-1]), mask=im.getchannel("A"))
    return base


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            converted = ImageCms.applyTransform(im, _transform(icc, im.mode))
            assert converted is not None  # None only when converting in place
            return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # an unusable or mismatched profile: plain conversion is the best left
    return im if im.mode == "RGB" else im.convert("RGB")


def _transform(icc: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    cache: dict[tuple[bytes, str], ImageCms.ImageCmsTransform] = _local.__dict__.setdefault("cms", {})
    key = (icc, mode)
    transform = cache.get(key)
    if transform is None:
        if len(cache) > 16:
            cache.clear()
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(source, _SRGB, mode, "RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL)
        cache[key] = transform
    return transform


def _read_exif(im: Image.Image) -> Image.Exif | None:
    try:
        return im.getexif()
    except Exception:  # damaged EXIF must not cost the picture
        return None


def _orientation(exif: Image.Exif | None) -> int:
    if exif is None:
        return 1
    value = exif.get(_ORIENTATION_TAG, 1)
    return value if isinstance(value, int) and value in _TRANSPOSE else 1


def _location(exif: Image.Exif | None) -> tuple[float, float, float | None] | None:
    """(lat, lon, alt) from the GPS IFD, signed by the reference tags; None when absent or nonsense."""
    if exif is None:
        return None
    try:
        gps = exif.get_ifd(_GPS_IFD)
        lat = _degrees(gps.get(2), gps.get(1), "S")
        lon = _degrees(gps.get(4), gps.get(3), "W")
        if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 180:
            return None
        alt: float | None = None
        if gps.get(6) is not None:
            alt = float(gps[6])
            ref = gps.get(5, 0)
            below = ref in (1, b"\x01") or (isinstance(ref, bytes) and ref[:1] == b"\x01")
            alt = -alt if below else alt
            if not math.isfinite(alt):
                alt = None
        return (lat, lon, alt)
    except Exception:
        return None


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    if not value:
        return None
    parts = [float(part) for part in (value if isinstance(value, tuple) else (value,))]
    parts += [0.0] * (3 - len(parts))
    degrees = parts[0] + parts[1] / 60 + parts[2] / 3600
    if not math.isfinite(degrees):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -degrees if isinstance(ref, str) and ref.strip().upper().startswith(negative) else degrees


def _decode_raw(data: bytes, max_edge: int, max_pixels: int, want_location: bool) -> Decoded:
    """A camera RAW: its embedded JPEG preview when it has a useful one, else a half-size raw decode."""
    try:
        import rawpy
    except ImportError as exc:
        raise DecodeFailure(RAW_MISSING) from exc
    location = None
    if want_location:
        # Most RAW containers are TIFF underneath. Read IFD0's tags alone: Pillow will not open
        # an IFD0 that holds the CFA data itself (as in phones' DNGs), and need not.
        try:
            exif = Image.Exif()
            exif.load(data)
            location = _location(exif)
        except Exception:
            location = None
    extent = data_extent(data)
    if extent is not None and extent > len(data):
        raise DecodeFailure(CORRUPT)  # LibRaw would decode the missing part as whatever memory holds
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError as exc:
        raise DecodeFailure("not an image (or a camera RAW format this LibRaw does not know)") from exc
    except Exception as exc:
        raise DecodeFailure(CORRUPT) from exc
    with raw:
        flip = _LIBRAW_FLIP.get(raw.sizes.flip, 1)
        preview = _raw_preview(raw, max_edge, max_pixels)
        if preview is not None:
            orientation = _orientation(_read_exif(preview))
            orientation = orientation if orientation != 1 else flip
            try:
                return Decoded(_finish(preview, orientation, max_edge), location)
            except DecodeFailure:
                pass  # only the header was checked: a damaged preview leaves the raw data to decode
        _check_size((raw.sizes.width, raw.sizes.height), max_pixels)
        try:
            rgb = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8)
        except Exception as exc:
            raise DecodeFailure(CORRUPT) from exc
    # postprocess has already applied the camera's flip.
    return Decoded(_finish(Image.fromarray(rgb), 1, max_edge), location)


def _raw_preview(raw: Any, max_edge: int, max_pixels: int) -> Image.Image | None:
    """The embedded preview, if it is a JPEG or bitmap big enough to caption from."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except Exception:  # no thumbnail, unsupported thumbnail or a damaged one: decode the raw data
        return None
    try:
        if thumb.format == rawpy.ThumbFormat.JPEG:
            im = _open(thumb.data, max_pixels)
        elif thumb.format == rawpy.ThumbFormat.BITMAP:
            # LibRaw turns some bitmaps upright itself (its Kodak-style loader, which 16-bit
            # DNG previews take) and not others, and does not say which: let the raw decode orient.
            if raw.sizes.flip:
                return None
            pixels = thumb.data
            im = Image.fromarray(pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels)
        else:
            return None
    except (DecodeFailure, TypeError, ValueError):  # fromarray refuses shapes it has no mode for
        return None
    # A 160x120 index thumbnail would caption badly; demand half the target size.
    if max(im.size) < min(max_edge, 1024) // 2:
        return None
    return im


def _ensure_heif(head: bytes) -> None:
    """pillow-heif registered; AVIF falls back to Pillow's own plugin when it has one."""
    if register_heif():
        return
    if is_avif(head) and "AVIF" in Image.registered_extensions().values():
        return
    raise DecodeFailure(HEIC_MISSING)
