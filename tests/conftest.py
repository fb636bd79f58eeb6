"""Shared fixtures: a live emulator on loopback, photo-like images, exiftool."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from PIL import Image, ImageDraw

import tagger

# CI runs hypothesis derandomised: the same examples every run, so a red CI is reproducible. No
# profile times a test or its data generation (deadline, too_slow): on a loaded machine that is the
# machine's speed, not the code's, and it would fail a run that found no counterexample.
_UNTIMED = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", derandomize=True, **_UNTIMED)
settings.register_profile("local", **_UNTIMED)
settings.load_profile("ci" if os.environ.get("CI") else "local")

CHECKOUT = Path(__file__).resolve().parent.parent
# Child processes (`python -m tagger` in the CLI tests) must import the installed package too: without this,
# a child started in the checkout would put the checkout first on sys.path. Tests also pass -P explicitly.
os.environ["PYTHONSAFEPATH"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    """The suite tests the installed package, never the checkout's ``tagger/`` (unless TAGGER_TEST_SOURCE=1)."""
    # The Ctrl-C tests stand in for a terminal signalling its foreground job, whose SIGINT is at its default.
    # A pytest started by nohup or in the background of a script ignores SIGINT, and every child it starts
    # would inherit that (tagger, as it should, keeps ignoring an ignored signal): those tests would then
    # fail for the way the suite was started. A handler, unlike SIG_IGN, is reset to the default by exec.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    here = Path(tagger.__file__).resolve()
    if here.parent == CHECKOUT / "tagger" and os.environ.get("TAGGER_TEST_SOURCE") != "1":
        raise pytest.UsageError(
            f"tagger was imported from the checkout ({here}), not from an install: "
            "run `pip install '.[test]'` and then `.venv/bin/pytest` (not `python -m pytest`, which puts the "
            "checkout first on sys.path); for a development loop on an editable install set TAGGER_TEST_SOURCE=1"
        )


KEY = "emulator-key"
SECRET = "emulator-secret"


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


@pytest.fixture
def emulator():
    """A fresh emulator with short latencies, stopped after the test."""
    from tagger.emulator import Emulator

    with Emulator(latency=(0.05, 0.15), seed=1) as emu:
        yield emu


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A small tree of distinct photo-like JPEGs."""
    root = tmp_path / "photos"
    for i in range(6):
        make_photo(root / ("sub" if i % 2 else "") / f"IMG_{i:04d}.JPG", seed=i)
    return root


def exiftool_json(*paths: Path | str) -> list[dict]:
    """What exiftool reads from files (-struct, group names)."""
    if shutil.which("exiftool") is None:
        raise AssertionError("exiftool is required for these tests (apt-get install libimage-exiftool-perl)")
    out = subprocess.run(["exiftool", "-j", "-struct", "-G1", *map(str, paths)], capture_output=True, check=True)
    return json.loads(out.stdout)
