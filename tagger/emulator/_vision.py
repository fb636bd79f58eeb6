"""What the emulator can honestly say about an image: catalog lookup or pixel statistics.

It recognises nothing. An upload that matches one of the bundled sample
images (by a 64-bit difference hash, so re-encoded and downsized copies still
match) gets that image's hand-written caption; any other image gets a plain
description of its colours and brightness, or is skipped as dark, bright or
blurry, which are the reasons the real service gives for such pictures.
"""

from __future__ import annotations

import colorsys
import io
import json
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps, ImageStat

__all__ = [
    "Analysis",
    "InvalidImage",
    "CatalogEntry",
    "MATCH_DISTANCE",
    "DARK_BELOW",
    "BRIGHT_ABOVE",
    "BLURRY_BELOW",
    "load_image",
    "dhash",
    "hamming",
    "catalog",
    "match_catalog",
    "sharpness",
    "describe",
    "analyse",
    "build_catalog",
]

# Re-encoding, downsizing to 512 px and JPEG quality 85 move a dHash by at most a
# few bits; unrelated pictures sit around 32 bits apart. The sample images are
# all at least 16 bits apart, so 10 does not confuse them.
MATCH_DISTANCE = 10
# Mean luminance (0-255) past which the real service says "dark" / "bright".
DARK_BELOW = 25.0
BRIGHT_ABOVE = 235.0
# Variance of the Laplacian of a 64 px greyscale thumbnail. Measured: a flat
# colour 0, linear and radial gradients under 5 (even after JPEG quality 50,
# whose block edges are what a larger thumbnail would pick up), the
# motion-blurred clock sample 84, other photographs 200-1500, random noise
# thousands; a 451 px photo needs a Gaussian blur of radius ~20 to fall below.
BLURRY_BELOW = 10.0
_SHARPNESS_THUMB = 64

_THUMB = 256
_LAPLACIAN = ImageFilter.Kernel((3, 3), [0, 1, 0, 1, -4, 1, 0, 1, 0], scale=1, offset=128)
# Hue bands in degrees (upper bound exclusive) -> colour name.
_HUES = [
    (15, "red"),
    (45, "orange"),
    (70, "yellow"),
    (160, "green"),
    (200, "cyan"),
    (255, "blue"),
    (290, "purple"),
    (335, "pink"),
    (361, "red"),
]


class InvalidImage(ValueError):
    """The bytes are not an image Pillow can decode."""


@dataclass(frozen=True)
class CatalogEntry:
    """One bundled sample image: file name, its dHash and its caption."""

    file: str
    phash: int
    caption: str


@dataclass(frozen=True)
class Analysis:
    """The settled answer for an image: a caption, or a skip reason."""

    caption: str | None = None
    skip_reason: str | None = None
    catalog_file: str | None = None


def load_image(data: bytes) -> Image.Image:
    """Decode bytes into an upright RGB image, shrunk for analysis; InvalidImage if impossible."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image: Image.Image = Image.open(io.BytesIO(data))
            # JPEG can decode straight at a reduced scale: much faster, and
            # the statistics below only need a thumbnail.
            image.draft("RGB", (_THUMB * 2, _THUMB * 2))
            image.load()
            image = ImageOps.exif_transpose(image)
            image = image.convert("RGB")
    except Exception as exc:  # Pillow raises many types for garbage input
        raise InvalidImage(str(exc)) from exc
    if image.width == 0 or image.height == 0:
        raise InvalidImage("empty image")
    image.thumbnail((_THUMB, _THUMB), Image.Resampling.BOX)
    return image


def dhash(image: Image.Image) -> int:
    """64-bit difference hash: is each pixel of a 9x8 grey thumbnail brighter than its right neighbour."""
    small = image.convert("L").resize((9, 8), Image.Resampling.BOX)
    pixels = small.tobytes()
    bits = 0
    for row in range(8):
        for col in range(8):
            left = pixels[row * 9 + col]
            right = pixels[row * 9 + col + 1]
            bits = (bits << 1) | (left > right)
    return bits


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (a ^ b).bit_count()


@lru_cache(maxsize=1)
def catalog() -> tuple[CatalogEntry, ...]:
    """The bundled catalog of sample images (read once)."""
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    return tuple(
        CatalogEntry(entry["file"], int(entry["phash"], 16), entry["caption"]) for entry in json.loads(text)["entries"]
    )


def match_catalog(image: Image.Image) -> CatalogEntry | None:
    """The closest catalog entry within MATCH_DISTANCE bits, if any."""
    value = dhash(image)
    best: tuple[int, CatalogEntry] | None = None
    for entry in catalog():
        distance = hamming(value, entry.phash)
        if distance <= MATCH_DISTANCE and (best is None or distance < best[0]):
            best = (distance, entry)
    return best[1] if best else None


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian of the greyscale image (low means blurry or flat)."""
    grey = image.convert("L")
    grey.thumbnail((_SHARPNESS_THUMB, _SHARPNESS_THUMB), Image.Resampling.BOX)
    edges = grey.filter(_LAPLACIAN)
    # The kernel's border pixels see the image edge; crop them off.
    if edges.width > 2 and edges.height > 2:
        edges = edges.crop((1, 1, edges.width - 1, edges.height - 1))
    return ImageStat.Stat(edges).var[0]


def _colour_name(hue: float, saturation: float, value: float) -> str:
    if value < 0.18:
        return "black"
    if saturation < 0.2:
        return "white" if value > 0.85 else "grey"
    degrees = hue * 360
    for upper, name in _HUES:
        if degrees < upper:
            return name
    return "red"


def describe(image: Image.Image, luminance: float) -> str:
    """A plain description of the dominant colours and brightness, e.g. "a mostly dark blue image"."""
    small = image.resize((32, 32), Image.Resampling.BOX).tobytes()
    counts: dict[str, int] = {}
    for i in range(0, len(small), 3):
        r, g, b = small[i] / 255, small[i + 1] / 255, small[i + 2] / 255
        name = _colour_name(*colorsys.rgb_to_hsv(r, g, b))
        counts[name] = counts.get(name, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    dominant = ranked[0][0]
    total = sum(counts.values())
    second = next(
        (name for name, n in ranked[1:] if n >= 0.15 * total and name not in ("black", "white", "grey")),
        None,
    )
    if luminance < 70 and dominant not in ("black", "white"):
        text = f"a mostly dark {dominant} image"
    elif luminance > 180 and dominant not in ("black", "white"):
        text = f"a bright, mostly {dominant} image"
    else:
        text = f"a mostly {dominant} image"
    return f"{text} with {second}" if second else text


def analyse(data: bytes) -> Analysis:
    """Caption or skip reason for the image bytes; InvalidImage if they do not decode."""
    image = load_image(data)
    entry = match_catalog(image)
    if entry is not None:
        return Analysis(caption=entry.caption, catalog_file=entry.file)
    luminance = ImageStat.Stat(image.convert("L")).mean[0]
    if luminance < DARK_BELOW:
        return Analysis(skip_reason="dark")
    if luminance > BRIGHT_ABOVE:
        return Analysis(skip_reason="bright")
    if sharpness(image) < BLURRY_BELOW:
        return Analysis(skip_reason="blurry")
    return Analysis(caption=describe(image, luminance))


def build_catalog(folder: Path, captions: dict[str, str]) -> dict[str, list[dict[str, str]]]:
    """The catalog.json document for the images in folder (used to regenerate it)."""
    entries = []
    for name in sorted(captions):
        image = load_image((folder / name).read_bytes())
        entries.append({"file": name, "phash": f"{dhash(image):016x}", "caption": captions[name]})
    return {"entries": entries}
