"""A cron job that can go green: exit 1 only for trouble new in this run; known failures named, not counted again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import broken_files, fast_config, make_photo, tagger

from tagger.emulator import Emulator


def nightly(root: Path, tmp_path: Path, emu: Emulator, *extra: str) -> subprocess.CompletedProcess:
    return tagger(
        "--config",
        str(fast_config(tmp_path)),
        "run",
        str(root),
        "--ledger",
        str(tmp_path / "l.sqlite"),
        "--endpoint",
        emu.url,
        *extra,
        env={"CLOUDSIGHT_API_KEY": emu.key},
    )


@pytest.mark.slow
def test_known_failures_do_not_fail_every_later_run(photos, tmp_path):
    broken = broken_files(photos / "broken")
    with Emulator(latency=(0.05, 0.1)) as emu:
        first = nightly(photos, tmp_path, emu)
        assert first.returncode == 1, first.stdout + first.stderr  # new trouble: three files failed
        assert "3 unreadable" in first.stdout  # the plan line counts them (it said 0)
        assert "failed 3" in first.stdout
        for _ in range(3):
            again = nightly(photos, tmp_path, emu)
            assert again.returncode == 0, again.stdout + again.stderr
            assert "3 known failures" in again.stdout and "failed 0" in again.stdout
            for path in broken:
                assert path.name in again.stdout
        assert emu.counters()["submissions"] == 6  # the six photos, once; the broken files cost nothing
        status = tagger("status", "--ledger", str(tmp_path / "l.sqlite"))
        assert "failed files (3;" in status.stdout
        for path in broken:
            assert f"{path}: " in status.stdout
        listed = json.loads(tagger("status", "--json", "--ledger", str(tmp_path / "l.sqlite")).stdout)
        assert sorted(f["path"] for f in listed["failed_files"]) == sorted(map(str, broken))
        # A changed file is tried again: fixed, it is captioned (one credit); still broken, it is new trouble.
        make_photo(broken[0], seed=78)
        with broken[2].open("a") as f:
            f.write("bread\n")
        changed = nightly(photos, tmp_path, emu)
        assert changed.returncode == 1, changed.stdout
        assert "failed 1" in changed.stdout and "1 known failure" in changed.stdout
        assert emu.counters()["submissions"] == 7
        assert (broken[0].parent / "empty.jpg.xmp").exists()
        assert nightly(photos, tmp_path, emu).returncode == 0


@pytest.mark.slow
def test_a_second_signal_while_a_stopped_run_winds_down_exits_3(photos, tmp_path):
    """The first signal stops the run; one more while it prints and exits must not end it by the signal."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        run_dir = tmp_path / sig.name
        run_dir.mkdir()
        with Emulator(latency=(0.3, 0.5)) as emu:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
            env.update(CLOUDSIGHT_API_KEY=emu.key, PYTHONUNBUFFERED="1")
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-P",
                    "-m",
                    "tagger",
                    "--config",
                    str(fast_config(run_dir)),
                    "run",
                    str(photos),
                    "--endpoint",
                    emu.url,
                    "--ledger",
                    str(run_dir / "l.sqlite"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            deadline = time.monotonic() + 60
            while emu.counters()["submissions"] < 1:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            os.killpg(proc.pid, sig)
            # The plan line is printed after the run returned: the process is winding down.
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("plan:"), line
            os.killpg(proc.pid, sig)
            proc.wait(timeout=60)
            err = proc.stderr.read() if proc.stderr else ""
            proc.stdout.close()
            proc.stderr.close()
        assert proc.returncode == 3, (sig.name, proc.returncode, err)
