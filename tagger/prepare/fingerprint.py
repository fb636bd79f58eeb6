"""A perceptual fingerprint of a decoded image, and the strict test that two are the same photo.

The fingerprint is made from the upright sRGB image the normaliser already
decoded, in one box-filter pass down to a 32x32 colour thumbnail, so it costs
a few per cent of preparing the image (``bench/bench_similar.py``):

- ``detail``: a 16x16 grey thumbnail (256 bytes), compared cell by cell: this
  is what tells two photos with the same colours and layout apart;
- ``colour``: a 4x4 RGB thumbnail (48 bytes);
- ``aspect``: width / height of the upright image.

``same_photo`` is deliberately strict (thresholds measured by
``bench/bench_similar.py``, figures in the README): resized, re-encoded,
converted and EXIF-rotated copies pass; look-alikes and crops do not.

Finding candidates among a million fingerprints: ``key`` packs the mean grey
of 8 regions (a 4x2 grid of the thumbnail) into 4 bits each, a 32-bit number
the ledger indexes. ``same_photo`` demands every region mean within
``REGION_MAX``, so ``probes`` (the keys of every bin combination within
``REGION_MAX`` of this one's region means: 1 to 256, typically a few dozen)
always contains a match's key: the lookup cannot miss one. The ledger then
drops rows whose region means (stored 8 bits each) are too far, in SQL. A
64-bit difference hash was tried first and dropped: flat skies made copies
differ in up to 8 of its bits (web exports, WebP), beyond what banded lookups
can find cheaply.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "Fingerprint",
    "fingerprint",
    "same_photo",
    "aspect_close",
    "DETAIL_MAX",
    "DETAIL_MEAN",
    "REGION_MAX",
    "COLOUR_MAX",
    "ASPECT_TOLERANCE",
    "MEANS_SLACK",
]

#: Largest difference of one 16x16 grey cell (0-255) between copies (measured: at most 3).
DETAIL_MAX = 6
#: Largest mean difference over the 256 grey cells between copies (measured: at most 0.5).
DETAIL_MEAN = 1.0
#: Largest difference of one 4x4 colour cell channel (0-255) between copies (measured: at most 2).
COLOUR_MAX = 6
#: Relative difference of width/height allowed between copies (±1 %).
ASPECT_TOLERANCE = 0.01
#: Largest difference of one region mean (32 cells) between copies (measured: at most 1).
REGION_MAX = 3
#: How far apart two matches' rounded region means can be (REGION_MAX, plus rounding).
MEANS_SLACK = REGION_MAX + 1

_THUMB = 32
_DETAIL = 16
_COLOUR = 4
_BIN = 16  # 16 levels of region mean: 4 bits each
_REGIONS = [(x, y) for y in range(2) for x in range(4)]  # 4 columns x 2 rows of 4x8 cells


@dataclass(frozen=True)
class Fingerprint:
    """The perceptual fingerprint of one upright image (see the module docstring)."""

    detail: bytes
    colour: bytes
    aspect: float

    def blob(self) -> bytes:
        """``detail`` then ``colour``, as the ledger stores them."""
        return self.detail + self.colour

    @classmethod
    def from_blob(cls, blob: bytes, aspect: float) -> Fingerprint:
        """Rebuild a fingerprint from the ledger's columns."""
        cut = _DETAIL * _DETAIL
        return cls(bytes(blob[:cut]), bytes(blob[cut:]), aspect)

    def region_means(self) -> list[float]:
        """Mean grey of the 8 key regions."""
        means = []
        for rx, ry in _REGIONS:
            total = 0
            for row in range(ry * 8, ry * 8 + 8):
                start = row * _DETAIL + rx * 4
                total += sum(self.detail[start : start + 4])
            means.append(total / 32)
        return means

    def rounded_means(self) -> list[int]:
        """The 8 region means rounded to integers (within DETAIL_MAX + 1 of a match's)."""
        return [round(m) for m in self.region_means()]

    @property
    def packed_means(self) -> int:
        """``rounded_means`` in one signed 64-bit integer, first region in the high byte, as SQLite stores it."""
        value = _pack(self.rounded_means(), 8)
        return value - (1 << 64) if value >= 1 << 63 else value

    @property
    def key(self) -> int:
        """The 32-bit index key: each region mean's bin, 4 bits each."""
        return _pack([min(15, int(m // _BIN)) for m in self.region_means()], 4)

    def probes(self) -> list[int]:
        """Every key a fingerprint within REGION_MAX of this one in every region mean can have (this one's first)."""
        choices = []
        for mean in self.region_means():
            low, high = (
                min(15, int(max(0.0, mean - REGION_MAX) // _BIN)),
                min(15, int(min(255.0, mean + REGION_MAX) // _BIN)),
            )
            own = min(15, int(mean // _BIN))
            choices.append([own] + [b for b in range(low, high + 1) if b != own])
        return [_pack(list(combo), 4) for combo in itertools.product(*choices)]


def _pack(values: list[int], bits: int) -> int:
    key = 0
    for v in values:
        key = (key << bits) | v
    return key


def fingerprint(image: Image.Image) -> Fingerprint:
    """The fingerprint of an upright RGB image."""
    from PIL import Image  # here: comparing stored fingerprints (a run's planning) needs no Pillow

    width, height = image.size
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    # One exact box-filter pass over the full image; the rest works on 1,024 pixels. (A faster integer
    # reduce first puts a partial box at the edge whose size depends on the copy's size: copies drift apart.)
    thumb = rgb.resize((_THUMB, _THUMB), Image.Resampling.BOX)
    detail = thumb.convert("L").resize((_DETAIL, _DETAIL), Image.Resampling.BOX).tobytes()
    colour = thumb.resize((_COLOUR, _COLOUR), Image.Resampling.BOX).tobytes()
    return Fingerprint(detail, colour, width / height)


def aspect_close(a: float, b: float) -> bool:
    """Whether two aspect ratios agree within ASPECT_TOLERANCE."""
    return abs(a - b) <= ASPECT_TOLERANCE * min(a, b)


def same_photo(a: Fingerprint, b: Fingerprint) -> bool:
    """Whether ``a`` and ``b`` are copies of one photo (resized, re-encoded, converted, rotated)."""
    if not aspect_close(a.aspect, b.aspect):
        return False
    if len(a.detail) != len(b.detail) or len(a.colour) != len(b.colour):
        return False
    diffs = [abs(x - y) for x, y in zip(a.detail, b.detail, strict=True)]
    if max(diffs) > DETAIL_MAX or sum(diffs) > DETAIL_MEAN * len(diffs):
        return False
    # What the index looks up: without this a match could sit in a bin it never probes.
    if any(abs(x - y) > REGION_MAX for x, y in zip(a.region_means(), b.region_means(), strict=True)):
        return False
    return max(abs(x - y) for x, y in zip(a.colour, b.colour, strict=True)) <= COLOUR_MAX
