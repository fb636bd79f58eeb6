"""The built-in emulator remembers its jobs and balance between processes, as the service does.

An interrupted ``tagger run --emulator`` resumes by polling the tokens it
holds (nothing paid twice), and ``tagger emulator`` can be stopped and
started again, saying what it charged when it stops.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import fast_config, make_photo, tagger

from tagger import cloudsight as cs
from tagger.emulator import Emulator

N = 24


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}


def _charged(state: Path) -> int:
    """Credits the emulator's state file says it charged, read as a reader would (WAL: no lock needed)."""
    if not state.exists():
        return 0
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM account WHERE name = 'charged'").fetchone()
    except sqlite3.OperationalError:  # made, its tables not yet
        return 0
    finally:
        db.close()
    return int(row[0]) if row else 0


def _sent(ledger: Path) -> int:
    """Jobs holding a token in the ledger (submitted and answered), read-only."""
    if not ledger.exists():
        return 0
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM jobs WHERE token IS NOT NULL").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i in range(N):
        make_photo(root / f"IMG_{i:04d}.jpg", seed=100 + i, size=(320, 240))
    return root


def _interrupted_then_resumed(tmp_path: Path, sig: int) -> tuple[Path, subprocess.CompletedProcess, int]:
    root = _tree(tmp_path)
    ledger = tmp_path / "l.sqlite"
    args = [sys.executable, "-P", "-m", "tagger", "--config", str(fast_config(tmp_path)), "run", str(root)]
    args += ["--emulator", "--emulator-latency", "2-3", "--max-in-flight", "8", "--ledger", str(ledger)]
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while _sent(ledger) < 6 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    first = _sent(ledger)
    assert 0 < first < N, first  # interrupted with jobs in flight, not after the end
    again = subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=180)
    assert again.returncode == 0, again.stderr
    return ledger, again, first


@pytest.mark.slow
def test_an_interrupted_emulator_run_resumes_without_paying_twice(tmp_path: Path) -> None:
    ledger, again, _ = _interrupted_then_resumed(tmp_path, signal.SIGINT)
    status = json.loads(tagger("status", "--ledger", str(ledger), "--json").stdout)
    assert status["completed"] == N and status["credits_used"] == N  # in flight at Ctrl-C: polled, not re-sent
    assert _charged(tmp_path / "l.emulator.sqlite") == N
    assert len(list((tmp_path / "photos").glob("*.xmp"))) == N


@pytest.mark.slow
def test_a_killed_emulator_run_pays_again_only_for_answers_it_never_got(tmp_path: Path) -> None:
    ledger, again, first = _interrupted_then_resumed(tmp_path, signal.SIGKILL)
    state = tmp_path / "l.emulator.sqlite"
    # SIGKILL can land between the emulator charging a submission and tagger recording its token: those
    # (and only those) are sent again, and the resumed run says so. Every token tagger had is polled.
    swept = 0
    for line in again.stderr.splitlines():
        if "interrupted while being submitted" in line:
            swept = int(line.split(" job")[0].split()[-1])
    assert _charged(state) == N + swept, (first, swept, again.stderr)
    assert swept <= 8  # at most the submissions in flight
    status = json.loads(tagger("status", "--ledger", str(ledger), "--json").stdout)
    assert status["completed"] == N


@pytest.mark.slow
def test_the_emulator_command_keeps_its_jobs_across_a_restart_and_says_what_it_charged(tmp_path: Path) -> None:
    state = tmp_path / "emu.sqlite"
    cmd = [sys.executable, "-P", "-m", "tagger", "emulator", "--port", "0", "--latency", "0.5", "--key", "k1"]
    cmd += ["--credits", "50", "--state", str(state)]

    def start() -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
        line = proc.stdout.readline()
        assert "listening at http://127.0.0.1:" in line, line + proc.stderr.read()
        return proc, line.split("listening at ", 1)[1].strip()

    def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> str:
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        return out

    photo = make_photo(tmp_path / "p.jpg", 3).read_bytes()
    proc, url = start()
    try:
        with cs.API(cs.SimpleAuth("k1"), base_url=url) as api:
            token = api.image_request(photo, "p.jpg")["token"]
            api.image_request(make_photo(tmp_path / "q.jpg", 4).read_bytes(), "q.jpg")
        # A second emulator on the same state would hand out a diverging account: refused.
        busy = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=30)
        assert busy.returncode == 2 and "in use" in busy.stderr
    finally:
        out = stop(proc)
    assert "stopped: charged 2 credits (2 since" in out and "balance 48" in out
    os.utime(state)  # nothing else: the job settles while no emulator runs, as at the service
    proc, url = start()
    try:
        with cs.API(cs.SimpleAuth("k1"), base_url=url, sleep=lambda s: time.sleep(0.05)) as api:
            answer = api.wait(token, timeout=20)
            assert answer["status"] == cs.STATUS_COMPLETED and answer["name"]
    finally:
        out = stop(proc, signal.SIGTERM)  # a service manager's stop says the same
    assert "stopped: charged 0 credits (2 since" in out and "balance 48" in out
    assert "k1" not in state.read_bytes().decode("latin-1")  # no secret on disk


def test_the_in_process_emulator_keeps_nothing_by_default(tmp_path: Path) -> None:
    before = set(os.listdir(tmp_path))
    with Emulator(latency=(0.05, 0.05)) as emu:
        with cs.API(cs.SimpleAuth(emu.key), base_url=emu.url) as api:
            token = api.image_request(make_photo(tmp_path / "p.jpg", 5).read_bytes(), "p.jpg")["token"]
        assert emu.charged == (1, 1) and not emu.remembers
    assert set(os.listdir(tmp_path)) == before | {"p.jpg"}
    with Emulator(latency=(0.05, 0.05), state=str(tmp_path / "s.sqlite")) as emu:
        assert not emu.remembers  # a new file knows no earlier job
    with Emulator(latency=(0.05, 0.05), state=str(tmp_path / "s.sqlite")) as emu:
        assert emu.remembers
        with cs.API(cs.SimpleAuth(emu.key), base_url=emu.url) as api:
            assert api.image_response(token)["status"] == "not found"  # another emulator's token
