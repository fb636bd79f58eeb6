"""A first run streams: new files are hashed and prepared from one read, and sent while the walk goes on.

Real runs against the emulator over loopback; file opens are counted with
strace on a real ``tagger run`` process (its preparing processes included).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import config_for, dry_with, exiftool_json, ledger_rows, make_photo, run_with

from tagger.emulator import Emulator
from tagger.pipeline.progress import Progress

pytestmark = pytest.mark.slow  # scenarios: whole first runs, strace, stops during the walk


class _HoldTheWalk(Progress):
    """Holds the walk after its first folder of photos until the emulator has been sent an image (or 60 s pass)."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(enabled=False)
        self.emulator = emulator
        self.folders = 0
        self.sent_while_walking: bool | None = None
        self.walker: str | None = None

    def __call__(self, what: str, n: int = 1) -> None:
        super().__call__(what, n)
        if what != "scanned" or not n:
            return
        self.folders += 1
        self.walker = threading.current_thread().name
        if self.folders == 1:
            deadline = time.monotonic() + 60
            while self.emulator.counters()["submissions"] == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            self.sent_while_walking = self.emulator.counters()["submissions"] > 0


def test_the_first_submissions_leave_while_the_walk_goes_on(emulator, tmp_path):
    root = tmp_path / "photos"
    for folder in range(4):
        for i in range(3):
            make_photo(root / f"f{folder}" / f"p{i}.jpg", seed=100 + 10 * folder + i, size=(200, 150))
    progress = _HoldTheWalk(emulator)
    result = run_with(emulator, config_for(emulator, tmp_path, reuse_similar=False), [root], progress=progress)
    # The walk waited after its first folder until an image had been sent: it did not wait in vain.
    assert progress.sent_while_walking is True and progress.folders == 4
    assert progress.walker != threading.main_thread().name
    assert result.exit_code == 0
    assert result.plan.new == 12 and result.plan.credits == 12
    assert emulator.counters()["submissions"] == 12 and emulator.counters()["duplicates"] == 0
    assert result.counts["completed"] == 12


def test_identical_new_files_are_sent_once_however_many_workers_read_them(emulator, tmp_path):
    root = tmp_path / "photos"
    one = make_photo(root / "a" / "one.jpg", seed=7, size=(240, 180))
    for folder in ("a", "b", "c"):
        for i in range(2):
            target = root / folder / f"copy{i}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(one, target)
    make_photo(root / "b" / "two.jpg", seed=8, size=(240, 180))
    make_photo(root / "c" / "three.jpg", seed=9, size=(240, 180))
    config = config_for(emulator, tmp_path, workers=4, reuse_similar=False)
    dry = dry_with(emulator, config, [root])
    result = run_with(emulator, config, [root])
    counters = emulator.counters()
    assert counters["submissions"] == 3 and counters["duplicates"] == 0
    assert dry.plan.credits == 3 == result.plan.credits
    assert (result.plan.new, result.plan.copied) == (dry.plan.new, dry.plan.copied) == (3, 6)
    assert result.counts["completed"] == 9
    # Every copy links to the one job, and every sidecar carries its caption.
    assert ledger_rows(
        config,
        "SELECT count(DISTINCT job_id), count(*) FROM files WHERE content_hash = "
        "(SELECT content_hash FROM files WHERE name = CAST('one.jpg' AS BLOB))",
    ) == [(1, 7)]
    captions = {
        m["XMP-dc:Description"] for m in exiftool_json(*sorted(root.rglob("*copy*.xmp")), root / "a" / "one.jpg.xmp")
    }
    assert len(captions) == 1 and captions != {""}


def test_a_mixed_first_run_counts_and_spends_what_its_dry_run_said(emulator, tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        make_photo(root / "new" / f"n{i}.jpg", seed=200 + i, size=(200, 150))
    shutil.copyfile(root / "new" / "n0.jpg", root / "new" / "n0 copy.jpg")
    make_photo(root / "shoot" / "IMG_0001.JPG", seed=210, size=(200, 150))
    (root / "shoot" / "IMG_0001.NEF").write_bytes(b"raw sensor data that is never sent" * 100)
    (root / "shoot" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    config = config_for(emulator, tmp_path, reuse_similar=False)
    dry = dry_with(emulator, config, [root])
    real = run_with(emulator, config, [root])
    plan = real.plan.as_dict()
    # The dry run (reuse_similar off: it decodes nothing) cannot know the broken file fails to decode; the run
    # counts it unreadable once it has tried (issue 20: the plan said "0 unreadable" for such files).
    assert dry.plan.unreadable == 0 and plan == dry.plan.as_dict() | {"similar": 0, "unreadable": 1}
    # n0..n2, IMG_0001.JPG and the broken file (it hashes whole, then fails to decode: its credit is not spent).
    assert plan["new"] == 5 and plan["copied"] == 1 and plan["paired"] == 1
    assert emulator.counters()["submissions"] == 4 == dry.plan.credits - 1 == real.plan.credits - 1
    assert real.counts["failed"] == 1  # the broken JPEG, with its reason
    metas = {
        Path(m["SourceFile"]).name: m
        for m in exiftool_json(root / "shoot" / "IMG_0001.JPG.xmp", root / "shoot" / "IMG_0001.NEF.xmp")
    }
    assert metas["IMG_0001.JPG.xmp"]["XMP-dc:Description"] == metas["IMG_0001.NEF.xmp"]["XMP-dc:Description"] != ""
    again = run_with(emulator, config, [root])
    assert emulator.counters()["submissions"] == 4 and again.plan.new == 0 and again.tally.submitted == 0


def test_a_lost_ledger_streams_and_takes_every_caption_back_from_the_sidecars(emulator, tmp_path):
    root = tmp_path / "photos"
    for i in range(5):
        make_photo(root / f"d{i % 2}" / f"p{i}.jpg", seed=300 + i, size=(200, 150))
    config = config_for(emulator, tmp_path, reuse_similar=False)
    first = run_with(emulator, config, [root])
    assert first.exit_code == 0 and emulator.counters()["submissions"] == 5
    os.remove(config.ledger_path)
    again = run_with(emulator, config, [root])
    assert again.exit_code == 0
    assert emulator.counters()["submissions"] == 5  # not one more
    assert again.plan.adopted == 5 and again.plan.credits == 0 and again.counts["completed"] == 5


_OPEN = re.compile(r'open(?:at)?\((?:AT_FDCWD|\d+), "((?:[^"\\]|\\.)*)".*\)\s+=\s+(\d+)')


def _photo_opens(traces: list[Path], root: Path) -> dict[str, int]:
    """Successful opens of each photo under ``root`` in ``strace -ff`` logs (sidecars and temporary files aside).

    One log per process: no call is split across lines by another process's.
    """
    opens: dict[str, int] = {}
    for trace in traces:
        for line in trace.read_text(encoding="utf-8", errors="replace").splitlines():
            found = _OPEN.search(line)
            if found and found.group(1).startswith(str(root) + os.sep) and found.group(1).lower().endswith(".jpg"):
                opens[found.group(1)] = opens.get(found.group(1), 0) + 1
    return opens


def test_each_new_file_is_read_once_and_an_unchanged_one_not_at_all(tmp_path):
    root = tmp_path / "photos"
    for i in range(6):
        make_photo(root / f"d{i % 2}" / f"p{i}.jpg", seed=400 + i, size=(320, 240))
    shutil.copyfile(root / "d0" / "p0.jpg", root / "d1" / "p0 copy.jpg")
    photos = sorted(str(p) for p in root.rglob("*.jpg"))
    cfg = tmp_path / "fast.toml"
    cfg.write_text(
        "[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\nreuse_similar = false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}

    def traced_run(name: str) -> dict[str, int]:
        trace = tmp_path / f"{name}.trace"
        cmd = [
            "strace",
            "-ff",
            "-qq",
            "-e",
            "trace=open,openat",
            "-o",
            str(trace),
            sys.executable,
            "-P",
            "-m",
            "tagger",
            "--config",
            str(cfg),
            "run",
            str(root),
            "--emulator",
            "--ledger",
            str(tmp_path / "ledger.sqlite"),
            "--quiet",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert out.returncode == 0, out.stderr
        traces = sorted(tmp_path.glob(f"{name}.trace.*"))
        assert len(traces) > 2  # the run and its preparing processes
        return _photo_opens(traces, root)

    first = traced_run("first")
    # Hashed, prepared and its metadata copied into the new sidecar: all from one read (the copy is only hashed).
    assert first == dict.fromkeys(photos, 1)
    assert len(list(root.rglob("*.jpg.xmp"))) == 7
    assert traced_run("again") == {}  # size and mtime decide: an unchanged photo is not opened


def _who_holds_what(config) -> dict[str, tuple]:
    """Per file: its caption, its job's token, and the file whose job lent the caption (None: its own)."""
    rows = ledger_rows(
        config,
        """SELECT f.name, j.caption, j.token,
                                   (SELECT d.name FROM files d WHERE d.job_id = j.similar_to ORDER BY d.id LIMIT 1)
                                   FROM files f JOIN jobs j ON j.id = f.job_id""",
    )
    return {
        os.fsdecode(name): (caption, token, lender and os.fsdecode(lender)) for name, caption, token, lender in rows
    }


@pytest.mark.parametrize("lender, copy", [("a.jpg", "z small.jpg"), ("z.jpg", "a small.jpg")])
def test_after_a_lost_ledger_a_lent_caption_is_taken_back_and_lent_again(emulator, tmp_path, lender, copy):
    """A similar copy's sidecar holds a caption without a token of its own: taken back all the same, no credit.

    The walk reaches the copy after its lender (first case) or before it (second): either way the
    copy's job shares the lender's again, as before the ledger was lost.
    """
    from PIL import Image

    root = tmp_path / "photos"
    big = make_photo(root / lender, seed=900, size=(640, 480))
    make_photo(root / "b.jpg", seed=901, size=(640, 480))
    config = config_for(emulator, tmp_path)
    assert run_with(emulator, config, [root]).tally.submitted == 2
    with Image.open(big) as im:
        im.resize((320, 240)).save(root / copy, quality=80)
    second = run_with(emulator, config, [root])
    assert second.tally.submitted == 0 and second.tally.reused == 1
    before = _who_holds_what(config)
    assert before[copy] == (before[lender][0], None, lender)
    os.remove(config.ledger_path)

    dry = dry_with(emulator, config, [root])
    assert (dry.plan.adopted, dry.plan.similar, dry.plan.credits) == (3, 0, 0)
    real = run_with(emulator, config, [root])
    assert real.plan.adopted == 3 and real.tally.submitted == 0 == dry.plan.credits
    assert emulator.counters()["submissions"] == 2
    assert _who_holds_what(config) == before


class _StopAfterFirstFolder(Progress):
    """Sets the run's stop event once the walk has handed over its first folder of photos (as Ctrl-C would)."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(enabled=False)
        self.stop = stop

    def __call__(self, what: str, n: int = 1) -> None:
        super().__call__(what, n)
        if what == "scanned" and n:
            self.stop.set()


def test_a_stop_during_the_walk_fails_nothing_and_the_next_run_sends_the_rest_once(emulator, tmp_path):
    root = tmp_path / "photos"
    for folder in range(3):
        for i in range(4):
            make_photo(root / f"f{folder}" / f"p{i}.jpg", seed=600 + 10 * folder + i, size=(200, 150))
    config = config_for(emulator, tmp_path, reuse_similar=False)
    stop = threading.Event()
    stopped = run_with(emulator, config, [root], progress=_StopAfterFirstFolder(stop), stop=stop)
    assert stopped.exit_code == 3 and stopped.stopped == "interrupted"
    assert stopped.counts.get("failed", 0) == 0
    # The walk stopped at the next folder: what it did not reach is unknown to the ledger, nothing is half-done.
    assert ledger_rows(config, "SELECT count(*) FROM files WHERE state = 'failed'") == [(0,)]
    assert ledger_rows(config, "SELECT count(*) FROM jobs WHERE state = 'submitting'") == [(0,)]
    sent = emulator.counters()["submissions"]
    assert sent <= 4
    again = run_with(emulator, config, [root])
    assert again.exit_code == 0 and again.counts["completed"] == 12
    assert emulator.counters()["submissions"] == 12 and emulator.counters()["duplicates"] == 0
