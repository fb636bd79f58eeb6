"""Helpers the tests (and the benchmarks, through bench/helpers.py) import: a fake clock, photo-like JPEGs, exiftool.

Fixtures stay in ``conftest.py``; anything a test imports by name lives here.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw


class FakeClock:
    """A clock whose sleep only moves time forward: backoff tests run in microseconds."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_photo(path: Path, seed: int, size: tuple[int, int] = (640, 480), *, exif: Image.Exif | None = None) -> Path:
    """A photo-like JPEG (gradient, shapes and noise: never flat, so never 'blurry')."""
    rnd = random.Random(seed)
    w, h = size
    base = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    tint = Image.new("RGB", (w, h), (rnd.randrange(40, 220), rnd.randrange(40, 220), rnd.randrange(40, 220)))
    img = Image.blend(base, tint, 0.6)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rnd.randrange(w), rnd.randrange(h)
        x1, y1 = x0 + rnd.randrange(20, w // 2), y0 + rnd.randrange(20, h // 2)
        draw.rectangle((x0, y0, x1, y1), fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
    noise = Image.effect_noise((w, h), 40).convert("RGB")
    img = Image.blend(img, noise, 0.25)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 90}
    if exif is not None:
        kwargs["exif"] = exif
    img.save(path, "JPEG", **kwargs)
    return path


def exiftool_json(*paths: Path | str) -> list[dict]:
    """What exiftool reads from files (-struct, group names)."""
    if shutil.which("exiftool") is None:
        raise AssertionError("exiftool is required for these tests (apt-get install libimage-exiftool-perl)")
    out = subprocess.run(["exiftool", "-j", "-struct", "-G1", *map(str, paths)], capture_output=True, check=True)
    return json.loads(out.stdout)
