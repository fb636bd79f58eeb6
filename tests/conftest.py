"""Fixtures only: a live emulator on loopback, a tree of photo-like images. Helpers are in ``helpers``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from helpers import make_photo
from hypothesis import HealthCheck, settings

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


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    """Headless Chromium (``browser.chromium``), one per test module, quit after it."""
    from browser import chromium  # selenium loads only for the modules that drive a page

    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()
