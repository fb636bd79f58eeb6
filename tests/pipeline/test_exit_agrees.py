"""What the run says agrees with how it ends: exit status and summary, credits counted after a kill."""

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

from tagger.emulator import Emulator, Faults


@pytest.mark.slow
def test_a_run_whose_only_trouble_is_unwritten_sidecars_says_so_in_its_quiet_summary(photos, tmp_path):
    blocked = photos / "IMG_0000.JPG.xmp"
    blocked.mkdir()  # a folder where the sidecar goes: it cannot be written
    with Emulator(latency=(0.05, 0.1), seed=1) as emu:
        proc = tagger(
            "--config",
            str(fast_config(tmp_path)),
            "run",
            str(photos),
            "--endpoint",
            emu.url,
            "--ledger",
            str(tmp_path / "ledger.sqlite"),
            "--quiet",
            env={"CLOUDSIGHT_API_KEY": emu.key},
        )
    assert proc.returncode == 1, proc.stderr
    assert "failed 0" in proc.stdout
    assert "1 sidecar could not be written" in proc.stdout


@pytest.mark.slow
def test_status_counts_the_credits_of_killed_runs(tmp_path):
    photos = tmp_path / "photos"
    for i in range(30):
        make_photo(photos / f"IMG_{i:04d}.jpg", seed=50 + i, size=(200, 150))
    ledger = tmp_path / "ledger.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    # Jobs take long at the service: the run is killed while it polls tokens it has paid for.
    with Emulator(latency=(30, 40), seed=2, faults=Faults()) as emu:
        env["CLOUDSIGHT_API_KEY"] = emu.key
        args = [sys.executable, "-P", "-m", "tagger", "--config", str(fast_config(tmp_path)), "run", str(photos)]
        args += ["--endpoint", emu.url, "--ledger", str(ledger), "--quiet"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while emu.counters()["submissions"] < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    con = sqlite3.connect(ledger)
    answered = con.execute("SELECT coalesce(sum(attempts), 0) FROM jobs").fetchone()[0]
    con.close()
    assert answered >= 5
    status = tagger("status", "--ledger", str(ledger), "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["credits_used"] == answered


def test_an_endpoint_without_a_scheme_is_refused_at_once_with_exit_2(photos, tmp_path):
    started = time.monotonic()
    proc = tagger(
        "run",
        str(photos),
        "--endpoint",
        "127.0.0.1:9/v1",
        "--ledger",
        str(tmp_path / "ledger.sqlite"),
        env={"CLOUDSIGHT_API_KEY": "k"},
    )
    assert proc.returncode == 2, proc.stderr
    assert "endpoint must be a URL" in proc.stderr
    assert time.monotonic() - started < 15
    assert not Path(tmp_path / "ledger.sqlite").exists()  # refused before anything was opened


def _default_signals() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
@pytest.mark.parametrize("after", [0.8, 1.5])
@pytest.mark.slow
def test_a_signal_while_tagger_starts_ends_it_with_exit_3_and_a_sentence(photos, tmp_path, sig, after):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    env["CLOUDSIGHT_API_KEY"] = "k"
    args = [sys.executable, "-P", "-m", "tagger", "run", str(photos), "--ledger", str(tmp_path / "ledger.sqlite")]
    args += ["--endpoint", "http://127.0.0.1:9/v1"]
    # Under nohup SIGHUP arrives ignored, and in a shell's background job SIGINT: tagger rightly keeps ignoring
    # them. The child gets the default dispositions back, as a command started in a terminal has them.
    proc = subprocess.Popen(
        args,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
    time.sleep(after)  # the interpreter is up, the CLI's imports are under way (they take seconds on a busy machine)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (proc.returncode, err)
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err
