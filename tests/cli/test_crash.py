"""SIGKILL at random moments, resume each time: nothing lost, nothing paid twice."""

from __future__ import annotations

import os
import random
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from helpers import exiftool_json, make_photo, run_config_file, start_run, wait_until

from tagger.emulator import Emulator, Faults
from tagger.pipeline.dispatch import max_posts_in_flight

pytestmark = pytest.mark.slow  # scenarios: SIGKILLed CLI processes over hundreds of images

WORKERS = 2
INTERRUPTED = re.compile(rb"(\d+) jobs? interrupted while being submitted")


def crash_and_resume(
    tmp_path: Path,
    images: int,
    kills: int,
    seed: int,
    *,
    size: tuple[int, int] = (320, 240),
    latency: tuple[float, float] = (0.5, 1.5),
    window: tuple[float, float] = (0.5, 2.5),
    in_flight: int = 8,
    slow: Faults | None = None,
) -> None:
    """Kill a CLI run at random moments (``window`` seconds after each start) until ``kills``, then let it finish.

    ``window`` must be short enough that ``kills`` runs cannot finish the work between them. ``slow``
    answers (the emulator holds an answer back after acting on the request) widen the moment a POST
    is in the air, so kills land mid-submit: the job exists and is charged, its token never arrives.
    Each kill is proven to have landed mid-run: the emulator holds tokens whose final answer the
    killed run had not yet collected (mid-poll), and the ledger holds jobs cut off mid-POST.
    """
    photos = tmp_path / "photos"
    for i in range(images):
        make_photo(photos / f"d{i % 7}" / f"IMG_{i:04d}.jpg", seed=1000 + i, size=size)
    rnd = random.Random(seed)
    killed = 0
    interrupted = 0  # jobs each start-up sweep found cut off mid-POST, as the runs reported them
    ledger = tmp_path / "ledger.sqlite"
    at_kill: list[tuple[int, int]] = []  # per kill: (tokens outstanding at the emulator, jobs cut off mid-POST)
    config = run_config_file(tmp_path / "run.toml", workers=WORKERS, in_flight=in_flight)
    with Emulator(latency=latency, seed=seed, faults=slow) as emu:
        while True:
            requests_before = emu.counters()["requests"]
            proc = start_run(photos, ledger, emu, config)
            if killed < kills:
                # The window opens at the run's first request, not at its start: start-up takes longer than
                # the window on a loaded machine, and a kill before any request proves nothing.
                wait_until(lambda: emu.counters()["requests"] != requests_before, proc=proc)  # noqa: B023
                try:
                    # With slow answers, every other kill waits (within the window) for a POST in the air.
                    _wait(proc, rnd.uniform(*window), ledger if slow is not None and killed % 2 == 0 else None, emu)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed += 1
                    outstanding = _outstanding(emu)
                    interrupted += _interrupted(proc.stderr.read())
                    cut = 0
                    if ledger.exists():  # the ledger survives every kill intact
                        con = sqlite3.connect(ledger)
                        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                        cut = con.execute("SELECT count(*) FROM jobs WHERE state = 'submitting'").fetchone()[0]
                        con.close()
                    at_kill.append((outstanding, cut))
                    continue
            out, err = proc.communicate(timeout=300)
            interrupted += _interrupted(err)
            if proc.returncode == 0:
                break
            assert killed >= kills, err
            raise AssertionError(f"run ended {proc.returncode}: {err.decode()}")
        counters = emu.counters()
    con = sqlite3.connect(ledger)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    states = dict(con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    counted = con.execute("SELECT sum(possible_duplicates) FROM jobs").fetchone()[0]
    assert states == {"completed": images}
    captions = {
        os.path.join(os.fsdecode(d), os.fsdecode(n)): c
        for d, n, c in con.execute("SELECT f.dir, f.name, j.caption FROM files f JOIN jobs j ON j.id = f.job_id")
    }
    con.close()
    # Every image captioned, no torn sidecar: exiftool reads each one back.
    sidecars = sorted(photos.rglob("*.xmp"))
    assert len(sidecars) == images
    for meta in exiftool_json(*sidecars):
        image = meta["SourceFile"][: -len(".xmp")]
        assert meta["XMP-dc:Description"] == captions[image]
    # Only POSTs cut off by a kill can have been paid twice, never more than the POSTs in flight at once,
    # and the ledger counted every one of them as a possible duplicate.
    assert counters["submissions"] == images + counters["duplicates"]
    assert counters["duplicates"] <= interrupted <= killed * max_posts_in_flight(in_flight)
    assert counters["duplicates"] <= counted <= interrupted
    assert killed == kills
    # The kills landed mid-run: tokens outstanding at the service at every kill, and POSTs cut off in the air.
    assert all(outstanding > 0 for outstanding, _ in at_kill), at_kill
    if slow is not None:
        assert sum(cut for _, cut in at_kill) == interrupted > 0, at_kill
    # No temporary file of an interrupted write is left anywhere (sidecars, ledger folder).
    leftovers = list(tmp_path.rglob(".*.tmp"))
    assert leftovers == []


def _outstanding(emu: Emulator) -> int:
    """Accepted submissions whose terminal answer no poll has collected yet."""
    snap = emu.counters()
    return snap["submissions"] - len(snap["first_seen_completed_at"])


def _wait(proc: subprocess.Popen, seconds: float, ledger: Path | None, emu: Emulator) -> None:
    """Wait ``seconds`` for ``proc`` to end, else raise TimeoutExpired (the caller kills it).

    With ``ledger``, the kill comes as soon as a POST is in the air (a job ``submitting``). Either way
    it comes only while the emulator holds tokens the run has not collected (waiting up to 60 s more
    for one: a run on a loaded machine may take that long to prepare its next upload), so every kill
    lands mid-poll; a run that ends meanwhile simply returns.
    """
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return
        if ledger is not None and ledger.exists() and _submitting(ledger) and _outstanding(emu):
            break
        time.sleep(0.01)
    end = time.monotonic() + 60
    while not _outstanding(emu) and time.monotonic() < end:
        if proc.poll() is not None:
            return
        time.sleep(0.01)
    raise subprocess.TimeoutExpired(proc.args, seconds)


def _submitting(ledger: Path) -> int:
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1)
    try:
        return con.execute("SELECT count(*) FROM jobs WHERE state = 'submitting'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the schema is still being made
    finally:
        con.close()


def _interrupted(stderr: bytes) -> int:
    return sum(int(n) for n in INTERRUPTED.findall(stderr or b""))


def test_sigkill_mid_run_loses_nothing(tmp_path):
    # 100 jobs x ~1 s / 8 in flight is >= 12 s of work; 6 kills within 1.5 s of each start leave most of it.
    # Every answer is held back 0.15 s after the emulator acted on it: a kill often cuts a POST off mid-air.
    crash_and_resume(
        tmp_path, images=100, kills=6, seed=11, window=(0.8, 1.5), slow=Faults(slow_rate=1.0, slow_seconds=0.15)
    )


def test_twenty_random_kills_across_three_hundred_images(tmp_path):
    crash_and_resume(
        # 300 jobs x ~0.6 s / 8 in flight is >= 22 s of work; 20 kills within 1 s of each start cannot finish it.
        tmp_path,
        images=300,
        kills=20,
        seed=23,
        size=(160, 120),
        latency=(0.3, 0.9),
        window=(0.4, 1.0),
        in_flight=8,
    )
