"""Helpers the tests (and the benchmarks, through bench/helpers.py) import: a fake clock, photo-like JPEGs, exiftool.

Fixtures stay in ``conftest.py``; anything a test imports by name lives here.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

if TYPE_CHECKING:  # the benchmarks import this module too: the pipeline loads when a helper below needs it
    from tagger.config import Config
    from tagger.emulator import Emulator


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


# Trees of files as users have them.


def synology_tree(root: Path) -> list[Path]:
    """Three photos of one's own, and what a Synology NAS and a desktop leave beside them."""
    mine = [make_photo(root / "2023" / f"IMG_{i}.JPG", seed=i) for i in range(3)]
    for i, photo in enumerate(mine):
        make_photo(root / "2023" / "@eaDir" / photo.name / "SYNOPHOTO_THUMB_XL.jpg", seed=100 + i, size=(320, 240))
    make_photo(root / "@eaDir" / "SYNOFILE_THUMB.jpg", seed=200, size=(200, 150))
    make_photo(root / "#recycle" / "deleted.jpg", seed=201)
    make_photo(root / "Trash-like" / ".Trash-1000" / "files" / "gone.jpg", seed=202)
    make_photo(root / "scans" / "draft.jpg", seed=203)
    return mine


def broken_files(folder: Path) -> list[Path]:
    """An empty file, a truncated JPEG and a text file named .jpg: each fails for good, before it is sent."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(make_photo(folder / "whole.tmp.jpg", seed=77).read_bytes()[:1500])
    (folder / "whole.tmp.jpg").unlink()
    text = folder / "notes.jpg"
    text.write_text("shopping list: milk, eggs\n" * 20)
    return [empty, truncated, text]


# The command line, run as a user runs it.


def _user_env(env: dict | None) -> dict:
    """This process's environment without its CLOUDSIGHT_/TAGGER_ settings, then ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    full_env.update(env or {})
    return full_env


def tagger(
    *args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run ``tagger ARGS`` as a user would (``python -m tagger``), without the caller's CLOUDSIGHT_/TAGGER_ settings."""
    return subprocess.run(
        [sys.executable, "-P", "-m", "tagger", *args],
        capture_output=True,
        text=True,
        env=_user_env(env),
        cwd=cwd,
        timeout=timeout,
    )


# A run as a child process, to be signalled or killed mid-flight (test_crash, test_interrupts, test_disk).


def run_config_file(path: Path, *, workers: int, in_flight: int = 8, extra: str = "") -> Path:
    """A config file at ``path``: quick polls, ``workers`` preparing, ``in_flight`` uploads at most, then ``extra``."""
    path.write_text(
        "[run]\nfirst_poll_delay = 0.2\npoll_interval = 0.1\nmax_poll_interval = 0.3\n"
        f"max_in_flight = {in_flight}\nworkers = {workers}\n{extra}"
    )
    return path


def start_run(
    photos: Path,
    ledger: Path,
    emu: Emulator,
    config: Path,
    *more: str,
    env: dict | None = None,
    wrap: Sequence[str] = (),
    text: bool = False,
    new_session: bool = False,
) -> subprocess.Popen:
    """Start ``tagger --config CONFIG run PHOTOS`` against ``emu`` (quiet, output piped) and return at once.

    ``wrap`` comes before the interpreter (``setpriv ...``); ``new_session`` puts the run in a process group of
    its own, so ``os.killpg(proc.pid, ...)`` reaches it and its preparing workers as a terminal would.
    """
    args = ["--config", str(config), "run", str(photos), "--endpoint", emu.url, "--ledger", str(ledger), "--quiet"]
    return subprocess.Popen(
        [*wrap, sys.executable, "-P", "-m", "tagger", *args, *more],
        env=_user_env({"CLOUDSIGHT_API_KEY": emu.key, **(env or {})}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
        start_new_session=new_session,
    )


def wait_until(condition: Callable[[], object], *, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``condition`` until it holds (True), or until ``proc`` has ended or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if (proc is not None and proc.poll() is not None) or time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def fast_config(tmp_path: Path) -> Path:
    """A config file in ``tmp_path`` whose polls are quick (the emulator answers in tenths of a second)."""
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n")
    return cfg


# The library pipeline against an emulator.

FAST = dict(first_poll_delay=0.1, poll_interval=0.05, max_poll_interval=0.2, retry_budget=20.0)


def config_for(emu: Emulator, tmp_path: Path, *, fast: dict = FAST, **extra) -> Config:
    """A config for ``emu`` with a ledger in ``tmp_path``, ``fast`` timings and ``extra`` settings."""
    from tagger.config import Config

    values = dict(fast, api_key=emu.key, endpoint=emu.url, ledger=str(tmp_path / "ledger.sqlite"))
    values.update(extra)
    return Config(**values)


def run_config(config: Config, paths, **kwargs):
    """One library run of ``config`` over ``paths``."""
    from tagger.pipeline.runner import make_api, run

    with make_api(config) as api:
        return run(config, [str(p) for p in paths], api=api, **kwargs)


def dry_config(config: Config, paths, **kwargs):
    """One library dry run of ``config`` over ``paths`` (sends nothing)."""
    from tagger.pipeline.dryrun import dry_run
    from tagger.pipeline.runner import make_api

    with make_api(config) as api:
        return dry_run(config, [str(p) for p in paths], api=api, **kwargs)


def queue_jobs(config: Config, paths, endpoint: str) -> int:
    """Plan ``paths`` into the ledger (hashed, jobs queued) without sending anything; returns the credits queued.

    (A capped real run no longer does this: it leaves what it did not read for the next run.)
    """
    from tagger.ledger.keys import normal_endpoint
    from tagger.ledger.store import Ledger
    from tagger.pipeline.plan import plan

    with Ledger(config.ledger_path, locale=config.locale) as ledger:
        return plan(ledger, [str(p) for p in paths], normal_endpoint(endpoint)).credits


def run_with(emu: Emulator, config: Config, paths, **kwargs):
    """``run_config``, for tests that name their emulator."""
    return run_config(config, paths, **kwargs)


def dry_with(emu: Emulator, config: Config, paths, **kwargs):
    """``dry_config``, for tests that name their emulator."""
    return dry_config(config, paths, **kwargs)


def ledger_rows(config: Config, sql: str):
    """The rows ``sql`` selects from ``config``'s ledger."""
    con = sqlite3.connect(config.ledger_path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
