"""A ledger that cannot be written (a full disk, a read-only mount, no permission): no token lost, a clear sentence.

The disk is a real, small tmpfs (mounting one needs root; the tests say so when they cannot).
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_photo, run_config_file, start_run, wait_until

from tagger.emulator import Emulator, Faults

IMAGES = 24


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 4 MiB tmpfs, reachable by every user (the permission test runs tagger as nobody)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (these tests run as root in CI)")
    top = Path(tempfile.mkdtemp(prefix="tagger-disk-"))
    top.chmod(0o755)
    mnt = top / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
        shutil.rmtree(top)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system holding ``folder``; returns the filler (delete it to free the space)."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (1 << 16, 1 << 12, 1):
            while True:
                try:
                    if os.write(fd, b"x" * size) < size:
                        break
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return filler


def photos_in(folder: Path, n: int = IMAGES) -> Path:
    for i in range(n):
        make_photo(folder / f"IMG_{i:04d}.jpg", seed=300 + i, size=(200, 150))
    folder.chmod(0o755)
    return folder


def tagger_run(photos: Path, ledger: Path, emu: Emulator, *, user: int | None = None) -> subprocess.Popen:
    """``tagger run`` writing no sidecars, as root or as ``user`` (its config and HOME beside ``photos``)."""
    config = run_config_file(photos.parent / "fast.toml", workers=2)
    config.chmod(0o644)
    if user is None:
        return start_run(photos, ledger, emu, config, "--no-sidecars", text=True)
    wrap = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
    return start_run(
        photos, ledger, emu, config, "--no-sidecars", text=True, wrap=wrap, env={"HOME": str(photos.parent)}
    )


def ran_once_then_one_more(photos: Path, ledger: Path, emu: Emulator) -> None:
    """A first run to the end, then one new photo (readable by all) for the next run; the emulator's counts zeroed."""
    first = tagger_run(photos, ledger, emu)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    make_photo(photos / "IMG_new.jpg", seed=99, size=(200, 150))
    (photos / "IMG_new.jpg").chmod(0o644)
    emu.reset_counters()


def tokens_in(ledger: Path) -> int:
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM jobs WHERE token IS NOT NULL").fetchone()[0]
    finally:
        con.close()


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_run_loses_no_token_and_the_next_run_pays_nothing_twice(small_disk, tmp_path):
    photos = photos_in(tmp_path / "photos")
    ledger = small_disk / "ledger.sqlite"
    # Each accepted upload's answer is held 1 s: the disk fills up while the service has answered (and charged)
    # uploads whose tokens the run has not recorded yet.
    with Emulator(latency=(0.3, 0.5), seed=7, faults=Faults(submit_delay=1.0)) as emu:
        proc = tagger_run(photos, ledger, emu)
        wait_until(lambda: emu.counters()["submissions"] >= 3, proc=proc)
        filler = fill(small_disk)
        out, err = proc.communicate(timeout=120)
        sent = emu.counters()["submissions"]
        assert proc.returncode == 3, err
        assert "internal error" not in err
        assert f"the disk holding the ledger {ledger} is full" in err
        assert "run the same command again" in err
        # Tokens were answered that the ledger could not take: the journal kept every one of them.
        unrecorded = sent - tokens_in(ledger)
        assert unrecorded > 0, "the disk filled up too late to test anything"
        assert f"{unrecorded} tokens the service had answered are kept in {ledger}.tokens" in err

        filler.unlink()
        again = tagger_run(photos, ledger, emu)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        assert f"{unrecorded} token(s) the service answered while the ledger could not record them" in err
        counters = emu.counters()
    assert counters["submissions"] == IMAGES  # one upload per distinct image: nothing paid twice
    assert counters["duplicates"] == 0
    assert "may have been charged twice" not in out
    con = sqlite3.connect(ledger)
    assert con.execute("SELECT count(*), sum(possible_duplicates) FROM jobs WHERE state = 'completed'").fetchone() == (
        IMAGES,
        0,
    )
    con.close()
    # The journal keeps its reserve, emptied.
    assert (small_disk / "ledger.sqlite.tokens").read_bytes().strip(b"\0") == b""


def test_a_disk_full_before_the_run_sends_nothing_and_says_so(small_disk, tmp_path):
    photos = photos_in(tmp_path / "photos", 3)
    ledger = small_disk / "ledger.sqlite"
    fill(small_disk)
    with Emulator(latency=(0.05, 0.1), seed=1) as emu:
        proc = tagger_run(photos, ledger, emu)
        _, err = proc.communicate(timeout=120)
        assert emu.counters()["requests"] == 0
    assert proc.returncode == 3, err
    assert f"the disk holding the ledger {ledger} is full" in err
    assert "internal error" not in err


@pytest.mark.slow
def test_a_read_only_ledger_sends_nothing_and_says_why(small_disk, tmp_path):
    photos = photos_in(tmp_path / "photos", 3)
    ledger = small_disk / "ledger.sqlite"
    with Emulator(latency=(0.05, 0.1), seed=1) as emu:
        ran_once_then_one_more(photos, ledger, emu)
        subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
        proc = tagger_run(photos, ledger, emu)
        _, err = proc.communicate(timeout=120)
        assert emu.counters()["requests"] == 0
    assert proc.returncode == 2, err
    assert f"the ledger {ledger} is on a read-only file system" in err
    assert "internal error" not in err


@pytest.mark.slow
def test_a_ledger_the_user_may_not_write_sends_nothing_and_says_why(small_disk, tmp_path):
    photos = photos_in(small_disk / "photos", 3)
    ledger = small_disk / "ledger.sqlite"
    with Emulator(latency=(0.05, 0.1), seed=1) as emu:
        ran_once_then_one_more(photos, ledger, emu)
        for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm", "ledger.sqlite.tokens"):
            if (small_disk / name).exists():
                (small_disk / name).chmod(0o644)  # readable by all, written by root only
        proc = tagger_run(photos, ledger, emu, user=65534)  # nobody
        _, err = proc.communicate(timeout=120)
        assert emu.counters()["requests"] == 0
    assert proc.returncode == 2, err
    assert f"no permission to write the ledger {ledger}" in err
    assert "internal error" not in err


def test_tokens_kept_by_many_threads_at_once_are_all_in_the_journal(tmp_path):
    # Upload threads keep their tokens at the same moment when the disk fills: each record needs its own place
    # (two written at one offset left one token in memory only, and the next run paid for it again).
    import threading

    from tagger.ledger.journal import TokenJournal

    journal = TokenJournal(str(tmp_path / "l.sqlite.tokens"))
    start = threading.Barrier(16)

    def keep(i: int) -> None:
        start.wait()
        for j in range(20):
            journal.keep({"job": i * 100 + j, "token": f"t{i}-{j}"})

    threads = [threading.Thread(target=keep, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    again = TokenJournal(str(tmp_path / "l.sqlite.tokens"))
    assert sorted(r["token"] for r in again.records) == sorted(f"t{i}-{j}" for i in range(16) for j in range(20))
    again.close()
