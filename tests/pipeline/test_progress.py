"""Progress that tells the truth: final totals only, four phases, rate and ETA, a line every 30 s in cron logs.

The clock is the only thing faked: runs are real, against the emulator over
loopback, through the CLI in a subprocess, and on a real pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from conftest import make_photo
from helpers import config_for, queue_jobs, run_with, tagger
from similar_corpus import album

from tagger.emulator import Emulator
from tagger.pipeline.latency import LatencyModel
from tagger.pipeline.progress import Progress

_PHASE = re.compile(r"(found|sent|captioned|written) (\d+)(?:/(\d+) \((\d+)%\))?")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Pipe(io.StringIO):
    """What cron captures: not a terminal."""

    def isatty(self) -> bool:
        return False


def _phases(line: str) -> dict[str, tuple[int, int | None, int | None]]:
    """phase -> (count, total or None, percent or None), from one progress line."""
    found = {m[1]: (int(m[2]), int(m[3]) if m[3] else None, int(m[4]) if m[4] else None) for m in _PHASE.finditer(line)}
    assert set(found) == {"found", "sent", "captioned", "written"}, line
    return found


def test_without_a_terminal_one_line_every_30_seconds_with_counts_totals_once_final_and_an_eta():
    from tagger.pipeline.progress import eta_words

    clock, pipe = _Clock(), _Pipe()
    progress = Progress(stream=pipe, clock=clock, heartbeat=None)
    latency = LatencyModel(4.0, 1.0, 10.0, prior=(6.0, 12.0))
    median = latency.quantile(0.5)
    assert median is not None and median > 0
    progress.latency = latency
    start = clock.now
    progress("owed", 0)  # the dispatcher starts: no tokens left by earlier runs
    for second in range(1, 96):
        clock.now = start + second - 0.5  # the counts of this second
        if second <= 40:
            progress("scanned", 10)  # the walk: ten files a second for 40 s
        progress("submitted", 1)  # one upload a second, while the walk goes on and after
        if second > 7:
            progress("settled", 1)
            progress("written", 1)
        if second == 40:
            progress.walk_over(100)  # the walk is over: 100 jobs in all this run
        clock.now = start + second
        progress.tick()  # what the heartbeat thread does every second
    lines = pipe.getvalue().splitlines()
    # 95 s: exactly one line at 30, 60 and 90 s, each one line with every phase.
    assert len(lines) == 3, lines
    assert all(line.startswith("tagger: progress: ") for line in lines)
    first, second, third = (_phases(line) for line in lines)
    # While the walk goes on no total is shown (it would grow), and no ETA is promised.
    assert first == {"found": (300, None, None), "sent": (30, None, None), "captioned": (23, None, None),
                     "written": (23, None, None)}  # fmt: skip
    assert "found 300 so far" in lines[0] and "no ETA while walking" in lines[0] and "1.0 sent/s" in lines[0]
    # Once the walk is over the totals are final; the ETA is what is left at the rate so far, plus the median latency.
    assert second == {"found": (400, 400, 100), "sent": (60, 100, 60), "captioned": (53, 100, 53),
                      "written": (53, None, None)}  # fmt: skip
    assert lines[1].endswith(f"; 1.0 sent/s; {eta_words(40 / 1.0 + median)}")
    assert third["sent"] == (90, 100, 90) and third["captioned"] == (83, 100, 83)
    assert lines[2].endswith(f"; {eta_words(10 / 1.0 + median)}")
    progress.close()
    assert pipe.getvalue().splitlines() == lines  # closing adds no line: the run's summary follows


def _photos(root: Path, folders: int, each: int, seed: int) -> list[Path]:
    return [
        make_photo(root / f"f{folder}" / f"p{i}.jpg", seed=seed + 10 * folder + i, size=(160, 120))
        for folder in range(folders)
        for i in range(each)
    ]


@pytest.mark.slow
def test_a_streaming_run_shows_totals_that_never_move_and_end_at_100_and_the_plan_once_the_walk_is_over(tmp_path):
    with Emulator(latency=(0.2, 0.4), seed=3) as emulator:
        root = tmp_path / "photos"
        config = config_for(emulator, tmp_path, reuse_similar=False, max_in_flight=3, workers=2)
        # Jobs an earlier run queued (sent once the walk is over), and new files (sent while it goes on).
        _photos(root / "old", 2, 3, seed=100)
        assert queue_jobs(config, [root], emulator.url) == 6
        _photos(root / "new", 4, 4, seed=500)
        pipe, plans = _Pipe(), []
        progress = Progress(
            stream=pipe,
            interval=0,  # a line at every count: every state the display went through
            heartbeat=None,
            on_plan=lambda p: plans.append((p.as_dict(), emulator.counters()["submissions"])),
        )
        result = run_with(emulator, config, [root], progress=progress)
        assert result.exit_code == 0 and result.counts["completed"] == 22
        assert emulator.counters()["submissions"] == 22 == result.tally.submitted
    renders = [_phases(line) for line in pipe.getvalue().splitlines()]
    assert len(renders) > 40
    for phase, final in (("found", 22), ("sent", 22), ("captioned", 22)):
        totals = [r[phase][1] for r in renders]
        shown = [t for t in totals if t is not None]
        # Unknown for a while (the walk streams), then one total that never changes again.
        assert totals[0] is None and shown and set(shown) == {final}, (phase, totals)
        assert totals.index(final) + len(shown) == len(totals), (phase, totals)
        percents = [r[phase][2] for r in renders if r[phase][2] is not None]
        assert max(percents) <= 100 and percents[-1] == 100 and percents == sorted(percents), (phase, percents)
        assert [r[phase][0] for r in renders] == sorted(r[phase][0] for r in renders)
    # The "sent" count went on while no total was shown: the walk and the uploads overlapped.
    assert any(r["sent"][0] > 0 and r["sent"][1] is None for r in renders)
    assert renders[-1]["written"][0] == result.sidecars_written == 22
    # The plan was shown once, when the walk was over, with the counts of the final plan; the queue of the
    # earlier run (6 jobs) was not sent yet then.
    assert len(plans) == 1 and plans[0][0] == result.plan.as_dict()
    assert plans[0][0]["new"] == 16 and plans[0][0]["credits"] == 22
    assert plans[0][1] <= 16


def test_a_run_of_queued_jobs_shows_its_plan_before_anything_is_sent(emulator, tmp_path):
    root = tmp_path / "photos"
    _photos(root, 2, 3, seed=900)
    config = config_for(emulator, tmp_path, reuse_similar=False)
    assert queue_jobs(config, [root], emulator.url) == 6
    plans = []
    progress = Progress(
        stream=_Pipe(), heartbeat=None, on_plan=lambda p: plans.append((p.credits, emulator.counters()["submissions"]))
    )
    result = run_with(emulator, config, [root], progress=progress)
    assert result.exit_code == 0 and emulator.counters()["submissions"] == 6
    assert plans == [(6, 0)]
    assert progress.totals == {"found": 6, "sent": 6, "captioned": 6, "written": None}
    assert progress.counts["sent"] == 6 == progress.counts["captioned"] == progress.counts["written"]


def _cli_run(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    root = tmp_path / name
    _photos(root, 2, 3, seed=300)
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(
        f'[run]\nledger = "{tmp_path / name}.sqlite"\nfirst_poll_delay = 0.1\npoll_interval = 0.05\n'
        "max_poll_interval = 0.2\nmax_in_flight = 2\nprogress_interval = 0.05\n"
    )
    return tagger("--config", str(cfg), "run", str(root), "--emulator", "--emulator-latency", "0.3-0.5", *extra)


@pytest.mark.slow
def test_without_a_terminal_progress_lines_go_to_stderr_and_quiet_prints_none(tmp_path):
    loud = _cli_run(tmp_path, "loud")
    assert loud.returncode == 0, loud.stderr
    lines = [line for line in loud.stderr.splitlines() if line.startswith("tagger: progress: ")]
    assert len(lines) >= 3, loud.stderr
    assert _phases(lines[-1])["written"][0] <= 6
    assert [line for line in loud.stdout.splitlines() if line.startswith("plan: ")] == [
        "plan: 6 new, 0 changed, 0 moved, 0 copied, 0 missing, 0 unchanged, 0 unreadable, "
        "0 RAW captioned from their JPEG, 0 adopted from their sidecars"
    ]
    quiet = _cli_run(tmp_path, "quiet", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "progress" not in quiet.stderr and "\r" not in quiet.stderr, quiet.stderr
    assert (
        quiet.stdout.splitlines()[0].startswith("new 6, submitted 6, captioned 6")
        and len(quiet.stdout.splitlines()) == 1
    )


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.slow
def test_on_a_terminal_each_phase_has_its_own_line(tmp_path):
    root = tmp_path / "photos"
    _photos(root, 2, 3, seed=700)
    cfg = tmp_path / "fast.toml"
    cfg.write_text(
        f'[run]\nledger = "{tmp_path}/ledger.sqlite"\nfirst_poll_delay = 0.1\npoll_interval = 0.05\n'
        "max_poll_interval = 0.2\n"
    )
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    env["TAGGER_TEST_SOURCE"] = os.environ.get("TAGGER_TEST_SOURCE", "")
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "tagger", "--config", str(cfg), "run", str(root), "--emulator"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 120)
            if not ready:
                raise AssertionError("no output for 120 s: " + out.decode(errors="replace"))
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's last writer has gone
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    text = _ANSI.sub("", out.decode(errors="replace"))
    renders = [piece.strip() for line in text.split("\n") for piece in line.split("\r") if piece.strip()]
    for phase in ("found", "sent", "captioned"):
        assert any(re.match(rf"{phase}: 100%\|.*\| 6/6 \[", r) for r in renders), (phase, renders)
    assert any(re.match(r"written: 6 \[", r) for r in renders), renders
    # Totals only once final: no bar ever showed a total other than 6.
    assert not [r for r in renders if re.match(r"(found|sent|captioned): .*\| \d+/(?!6 )\d+", r)], renders
    assert any(r.startswith("plan: 6 new") for r in renders), renders
    assert any(r.startswith("new 6, submitted 6, captioned 6") for r in renders), renders


@pytest.mark.slow
def test_copies_that_share_a_caption_leave_the_queue_without_an_upload_and_sent_still_ends_at_100(emulator, tmp_path):
    album(tmp_path / "album", seed=5)
    config = config_for(emulator, tmp_path)  # reuse_similar: a resized or re-encoded copy shares its caption
    pipe = _Pipe()
    result = run_with(
        emulator, config, [tmp_path / "album"], progress=Progress(stream=pipe, interval=0, heartbeat=None)
    )
    uploads = emulator.counters()["submissions"]
    assert result.exit_code == 0 and result.tally.reused > 0 and uploads == result.tally.submitted
    last = pipe.getvalue().splitlines()[-1]
    jobs = uploads + result.tally.reused
    assert _phases(last)["sent"] == (jobs, jobs, 100) and _phases(last)["captioned"] == (jobs, jobs, 100), last
    assert f"({result.tally.reused} without an upload)" in last
