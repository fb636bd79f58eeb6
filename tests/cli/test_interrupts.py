"""Ctrl-C and SIGTERM to the whole process group: a graceful stop, nothing failed, a clean resume.

Each test starts ``tagger run`` as a real subprocess in its own session (so
``os.killpg`` reaches it and its preparing workers, as a terminal or systemd
would) against an emulator started here, interrupts it mid-flight, then runs
it again to the end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import make_photo, run_config_file, start_run, wait_until
from PIL import Image

from tagger.config import Config
from tagger.emulator import Emulator, Faults
from tagger.pipeline.dispatch import STOP_GRACE
from tagger.pipeline.runner import make_api, run

IMAGES = 12
WORKERS = 3
SWEPT = re.compile(r"(\d+) jobs? interrupted while being submitted")
NOT_YET = "the run never reached the moment to interrupt"


@pytest.fixture(scope="module")
def big_pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Distinct 3200x2400 PNGs: each takes a worker process about half a second to prepare."""
    root = tmp_path_factory.mktemp("big")
    for i in range(IMAGES):
        small = make_photo(root / f"seed_{i}.jpg", seed=500 + i, size=(400, 300))
        Image.open(small).resize((3200, 2400)).save(root / f"IMG_{i:04d}.png", compress_level=1)
        small.unlink()
    return root


def _photos(source: Path, tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    shutil.copytree(source, photos)
    return photos


def _start(
    photos: Path, tmp_path: Path, emu: Emulator, *, processes: bool = True, in_flight: int = 8
) -> subprocess.Popen:
    """``tagger run`` in a session of its own (so ``os.killpg`` reaches its workers), text output piped."""
    prepare = f"[prepare]\nprepare_in_processes = {'true' if processes else 'false'}\n"
    config = run_config_file(tmp_path / "run.toml", workers=WORKERS, in_flight=in_flight, extra=prepare)
    return start_run(photos, tmp_path / "ledger.sqlite", emu, config, text=True, new_session=True)


def _group(pgid: int) -> list[int]:
    """PIDs in a process group (Linux /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:
                members.append(int(entry))
    return members


def _ledger(tmp_path: Path) -> dict:
    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    try:
        return {
            "jobs": dict(con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()),
            "failed_files": con.execute("SELECT count(*) FROM files WHERE state = 'failed'").fetchone()[0],
            "tokens": con.execute("SELECT count(*) FROM jobs WHERE token IS NOT NULL").fetchone()[0],
            "last_exit": (con.execute("SELECT exit_code FROM runs ORDER BY id DESC LIMIT 1").fetchone() or [None])[0],
        }
    finally:
        con.close()


def _resume(photos: Path, tmp_path: Path, emu: Emulator) -> subprocess.CompletedProcess:
    proc = _start(photos, tmp_path, emu)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _assert_stopped_cleanly(
    proc: subprocess.Popen, out: str, err: str, tmp_path: Path, *, at_once: bool = False
) -> dict:
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "Error" not in err, err
    assert "interrupted" in err
    state = _ledger(tmp_path)
    assert state["failed_files"] == 0 and "failed" not in state["jobs"], state
    # Quitting at once leaves the run's row open: the next run's start-up sweep closes it with 3.
    assert state["last_exit"] == (None if at_once else 3)
    return state


def _assert_resumed(photos: Path, tmp_path: Path, emu: Emulator) -> dict:
    again = _resume(photos, tmp_path, emu)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert _ledger(tmp_path)["jobs"] == {"completed": IMAGES}
    assert len(list(photos.glob("*.xmp"))) == IMAGES
    return {"stderr": again.stderr, **emu.counters()}


@pytest.mark.slow
def test_ctrl_c_to_the_group_while_worker_processes_prepare_fails_nothing(big_pngs, tmp_path):
    photos = _photos(big_pngs, tmp_path)
    with Emulator(latency=(0.3, 0.6), seed=5) as emu:
        proc = _start(photos, tmp_path, emu)
        # Preparing is the bottleneck here (half a second per image, three workers): once two images are
        # sent, the workers are busy with the next ones.
        assert wait_until(lambda: emu.counters()["submissions"] >= 2), NOT_YET
        assert len(_group(proc.pid)) >= 1 + WORKERS  # the run, its forkserver and its preparing workers
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        state = _assert_stopped_cleanly(proc, out, err, tmp_path)
        sent = emu.counters()["submissions"]
        assert sent < IMAGES
        assert state["tokens"] == sent and "submitting" not in state["jobs"]  # every answer was recorded
        assert state["jobs"].get("queued", 0) >= 1  # the images cut off while preparing wait for the next run
        # No worker left behind (helpers exit on the closed pipe).
        assert wait_until(lambda: not _group(proc.pid), timeout=10), _group(proc.pid)
        counters = _assert_resumed(photos, tmp_path, emu)
    assert counters["submissions"] == IMAGES and counters["duplicates"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("processes", [True, False], ids=["worker-processes", "threads"])
def test_ctrl_c_while_posts_are_in_flight_records_their_answers(big_pngs, tmp_path, processes):
    photos = _photos(big_pngs, tmp_path)
    # Every answer is held back 1.5 s: the POSTs counted by the emulator are still waiting for theirs.
    with Emulator(latency=(0.2, 0.4), seed=6, faults=Faults(slow_rate=1.0, slow_seconds=1.5)) as emu:
        proc = _start(photos, tmp_path, emu, processes=processes)
        assert wait_until(lambda: emu.counters()["submissions"] >= 2), NOT_YET
        in_flight_at_signal = emu.counters()["submissions"]
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        state = _assert_stopped_cleanly(proc, out, err, tmp_path)
        sent = emu.counters()["submissions"]
        assert sent >= in_flight_at_signal
        assert state["tokens"] == sent and "submitting" not in state["jobs"]  # no answer lost
        emu.set_faults(Faults())
        counters = _assert_resumed(photos, tmp_path, emu)
    assert not SWEPT.search(counters["stderr"])
    assert counters["submissions"] == IMAGES and counters["duplicates"] == 0


@pytest.mark.slow
def test_sigterm_mid_run_stops_within_the_grace_and_resumes(big_pngs, tmp_path):
    photos = _photos(big_pngs, tmp_path)
    with Emulator(latency=(0.3, 0.6), seed=7, faults=Faults(slow_rate=0.5, slow_seconds=1.0)) as emu:
        proc = _start(photos, tmp_path, emu)
        assert wait_until(lambda: emu.counters()["submissions"] >= 3), NOT_YET
        sent_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - sent_at
        _assert_stopped_cleanly(proc, out, err, tmp_path)
        assert "SIGTERM" in out + err
        print(f"\nSIGTERM to exit: {seconds:.2f} s")
        # The answers of POSTs in flight are awaited at most STOP_GRACE; the rest is closing the ledger.
        assert seconds < STOP_GRACE + 3.0
        emu.set_faults(Faults())
        counters = _assert_resumed(photos, tmp_path, emu)
    assert counters["submissions"] == IMAGES and counters["duplicates"] == 0


@pytest.mark.slow
def test_a_second_signal_quits_at_once_and_the_resume_counts_what_it_cut_off(big_pngs, tmp_path):
    photos = _photos(big_pngs, tmp_path)
    # Answers held back 4 s: the first signal would wait for them; the second must not.
    with Emulator(latency=(0.2, 0.4), seed=8, faults=Faults(slow_rate=1.0, slow_seconds=4.0)) as emu:
        proc = _start(photos, tmp_path, emu)
        assert wait_until(lambda: emu.counters()["submissions"] >= 2), NOT_YET
        os.killpg(proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting for the answers in flight
        second_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - second_at
        print(f"\nsecond SIGTERM to exit: {seconds:.2f} s")
        assert seconds < 1.5, seconds
        _assert_stopped_cleanly(proc, out, err, tmp_path, at_once=True)
        assert "interrupted again" in err
        cut_off = emu.counters()["submissions"] - _ledger(tmp_path)["tokens"]
        assert cut_off >= 1  # accepted by the service, answer never read: only these may be paid twice
        emu.set_faults(Faults())
        counters = _assert_resumed(photos, tmp_path, emu)
    con = sqlite3.connect(tmp_path / "ledger.sqlite")
    assert [r[0] for r in con.execute("SELECT exit_code FROM runs ORDER BY id")] == [3, 0]
    con.close()
    swept = sum(int(n) for n in SWEPT.findall(counters["stderr"]))
    assert swept == cut_off  # the resume says how many it sends again
    assert counters["duplicates"] == cut_off and counters["submissions"] == IMAGES + cut_off


def test_a_stop_before_the_run_sends_nothing_and_fails_nothing(tmp_path):
    for i in range(4):
        make_photo(tmp_path / "photos" / f"IMG_{i}.jpg", seed=i)
    stop = threading.Event()
    stop.set()
    with Emulator(latency=(0.05, 0.1)) as emu:
        config = Config(api_key=emu.key, endpoint=emu.url, ledger=str(tmp_path / "ledger.sqlite"))
        with make_api(config) as api:
            result = run(config, [str(tmp_path / "photos")], api=api, stop=stop)
        assert emu.counters()["submissions"] == 0
    assert result.exit_code == 3 and result.stopped == "interrupted"
    assert _ledger(tmp_path)["failed_files"] == 0


@pytest.mark.slow
def test_a_stop_waits_no_longer_than_the_grace_for_answers(big_pngs, tmp_path):
    photos = _photos(big_pngs, tmp_path)
    # Answers held back 15 s, far past the grace: the run must not wait for them (nor for its HTTP threads).
    # The POSTs in flight at the signal went out as it came (after the first answer, the probe's), so a run
    # that waited for them would take ~15 s, 1.5 times the bound below, which leaves a loaded machine 5 s to
    # exit after the grace (typically it takes a few tenths); load only makes such a run slower still.
    with Emulator(latency=(0.2, 0.4), seed=9, faults=Faults(slow_rate=1.0, slow_seconds=15.0)) as emu:
        proc = _start(photos, tmp_path, emu)
        assert wait_until(lambda: emu.counters()["submissions"] >= 2), NOT_YET
        sent_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - sent_at
        print(f"\nSIGTERM to exit, answers held 15 s: {seconds:.2f} s")
        assert STOP_GRACE - 0.5 <= seconds < STOP_GRACE + 5.0
        _assert_stopped_cleanly(proc, out, err, tmp_path)
        cut_off = emu.counters()["submissions"] - _ledger(tmp_path)["tokens"]
        assert cut_off >= 1
        emu.set_faults(Faults())
        counters = _assert_resumed(photos, tmp_path, emu)
    # Uploads whose answer outlasted the grace are sent again, counted and said: the only possible double charge.
    assert sum(int(n) for n in SWEPT.findall(counters["stderr"])) == cut_off
    assert counters["duplicates"] == cut_off and counters["submissions"] == IMAGES + cut_off
