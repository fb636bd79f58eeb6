"""A new user's first week, scripted: every step a real `tagger` process, every credit counted by the emulator.

The walkthrough in docs/first-week.md tells the same week in prose.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import broken_files, fast_config, make_photo, synology_tree, tagger

from tagger.emulator import Emulator


@pytest.mark.slow
def test_the_first_week(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pictures = home / "Pictures"
    for i in range(5):
        make_photo(pictures / "2024" / f"IMG_{i:04d}.JPG", seed=1000 + i)
    nas = tmp_path / "volume1" / "photo"
    ledger = str(home / "tagger.sqlite")
    cfg = fast_config(home)

    with Emulator(latency=(0.05, 0.1)) as service, Emulator(latency=(0.05, 0.1)) as other:

        def tagger_at(emu: Emulator, *args: str):
            out = tagger(
                "--config",
                str(cfg),
                *args,
                "--ledger",
                ledger,
                "--endpoint",
                emu.url,
                env={"CLOUDSIGHT_API_KEY": emu.key},
            )
            return out

        def sent() -> int:
            return int(service.counters()["submissions"])  # type: ignore[call-overload]

        # Monday: what would it cost? Then the first run.
        dry = tagger_at(service, "run", str(pictures), "--dry-run")
        assert dry.returncode == 0 and "5 credits would be spent: 5 for new pictures" in dry.stdout, dry.stdout
        assert service.counters()["requests"] == 0
        first = tagger_at(service, "run", str(pictures))
        assert first.returncode == 0, first.stdout + first.stderr
        assert sent() == 5 and len(list(pictures.rglob("*.xmp"))) == 5

        # Tuesday: a typo in an option, and one more photo: nothing is sent until the command is right.
        new = make_photo(pictures / "2024" / "IMG_0100.JPG", seed=1100)
        typo = tagger_at(service, "run", str(pictures), "--csv", str(home / "out.csv"), "--csv-profile", "lightroom")
        assert typo.returncode == 2 and "unknown CSV profile 'lightroom'" in typo.stderr
        assert sent() == 5 and not (home / "out.csv").exists()
        # ... then just that photo.
        one = tagger_at(service, "run", str(new))
        assert one.returncode == 0 and "files: 1 total, 1 completed" in one.stdout, one.stdout
        assert sent() == 6 and (new.parent / "IMG_0100.JPG.xmp").exists()

        # Wednesday: the NAS share, with Synology's @eaDir thumbnails and #recycle.
        mine = synology_tree(nas)
        nas_run = tagger_at(service, "run", str(nas), "--exclude", "scans/")
        assert nas_run.returncode == 0, nas_run.stdout + nas_run.stderr
        assert "4 left out by exclude patterns" in nas_run.stdout
        assert sent() == 6 + len(mine)
        assert not [p for p in nas.rglob("*.xmp") if "@eaDir" in p.parts or "#recycle" in p.parts]

        # Thursday: three broken files turn up. They fail, cost nothing, and this run says so (exit 1).
        broken_files(pictures / "broken")
        bad_day = tagger_at(service, "run", str(pictures), str(nas), "--exclude", "scans/")
        assert bad_day.returncode == 1 and "failed 3" in bad_day.stdout, bad_day.stdout
        assert sent() == 9

        # Friday to Sunday: the nightly cron job (no terminal: never asks) goes green.
        for _night in range(3):
            nightly = tagger_at(service, "run", str(pictures), str(nas), "--exclude", "scans/", "--quiet")
            assert nightly.returncode == 0, nightly.stdout + nightly.stderr
            assert "3 known failures" in nightly.stdout and "failed 0" in nightly.stdout
        assert sent() == 9
        status = tagger("status", "--ledger", ledger)
        assert "failed files (3;" in status.stdout

        # And a second endpoint: the dry run says why everything would be paid for again; max_credits caps it.
        elsewhere = tagger_at(other, "run", str(pictures), "--dry-run")
        assert "6 credits would be spent: 6 for photos captioned only at another endpoint" in elsewhere.stdout
        capped = tagger_at(other, "run", str(pictures), "--max-credits", "2")
        assert capped.returncode == 3, capped.stdout + capped.stderr
        assert other.counters()["submissions"] == 2

    # The week cost exactly: 5 + 1 + 3 at the service, 2 at the other endpoint; nothing twice.
    assert service.counters()["duplicates"] == 0 and sent() == 9

    # Trying the resume promise offline: Ctrl-C a --emulator run with uploads in flight, then run it again.
    # The built-in emulator keeps its jobs beside the ledger (as the service keeps them): nothing is paid twice.
    offline = tmp_path / "offline"
    for i in range(12):
        make_photo(offline / f"IMG_{i:04d}.JPG", seed=2000 + i, size=(320, 240))
    trial = str(tmp_path / "trial.sqlite")
    args = [sys.executable, "-P", "-m", "tagger", "--config", str(cfg), "run", str(offline), "--emulator"]
    args += ["--emulator-latency", "2-3", "--max-in-flight", "6", "--ledger", trial]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if json.loads(tagger("status", "--ledger", trial, "--json").stdout or "{}").get("credits_used", 0) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 3
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    status = json.loads(tagger("status", "--ledger", trial, "--json").stdout)
    assert status["completed"] == 12 and status["credits_used"] == 12  # the uploads in flight were polled, not re-sent
    assert len(list(offline.glob("*.xmp"))) == 12
