"""Spending explained and confirmed: the dry run says why each credit goes; a terminal is asked above confirm_above."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import fast_config, make_photo, tagger

from tagger.emulator import Emulator


def _run(emu: Emulator, tmp_path: Path, *args: str, config: Path | None = None):
    return tagger(
        "--config",
        str(config or fast_config(tmp_path)),
        "run",
        *args,
        "--ledger",
        str(tmp_path / "l.sqlite"),
        "--endpoint",
        emu.url,
        env={"CLOUDSIGHT_API_KEY": emu.key},
    )


@pytest.mark.slow
def test_the_dry_run_says_why_each_credit_would_be_spent(photos, tmp_path):
    with Emulator(latency=(0.05, 0.1)) as first, Emulator(latency=(0.05, 0.1)) as second:
        dry = _run(first, tmp_path, str(photos), "--dry-run")
        assert "6 credits would be spent: 6 for new pictures" in dry.stdout, dry.stdout
        assert _run(first, tmp_path, str(photos)).returncode == 0
        # Another endpoint: every photo is sent again, and the dry run says so.
        moved = _run(second, tmp_path, str(photos), "--dry-run")
        assert "0 new" in moved.stdout and "6 unchanged" in moved.stdout
        assert "6 credits would be spent: 6 for photos captioned only at another endpoint" in moved.stdout
        # Another locale; a changed picture and a new one.
        german = fast_config(tmp_path)
        german.write_text(german.read_text() + "[service]\nlocale = 'de-DE'\n")
        assert (
            "6 for photos captioned only in another locale"
            in _run(first, tmp_path, str(photos), "--dry-run", config=german).stdout
        )
        make_photo(photos / "IMG_0000.JPG", seed=123)
        make_photo(photos / "IMG_new.JPG", seed=124)
        mixed = _run(first, tmp_path, str(photos), "--dry-run")
        assert "2 credits would be spent: 1 for new pictures, 1 for changed pixels" in mixed.stdout, mixed.stdout
        assert first.counters()["submissions"] == 6 and second.counters()["submissions"] == 0


def _in_a_terminal(args: list[str], env: dict, answer: str | None, timeout: float = 120) -> tuple[int, str]:
    """Run ``tagger`` with a real pseudo-terminal as its standard input and output; answer its question."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "tagger", *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, seen.decode(errors="replace")
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if answer is not None and not answered and b"Go on?" in seen:
                os.write(master, answer.encode() + b"\n")
                answered = True
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, seen.decode(errors="replace")


@pytest.mark.slow
def test_a_terminal_is_asked_above_confirm_above_and_no_sends_nothing(photos, tmp_path):
    cfg = fast_config(tmp_path)
    cfg.write_text(cfg.read_text() + "confirm_above = 3\n")
    with Emulator(latency=(0.05, 0.1)) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
        env["CLOUDSIGHT_API_KEY"] = emu.key
        args = ["--config", str(cfg), "run", str(photos), "--endpoint", emu.url, "--ledger", str(tmp_path / "l.sqlite")]
        code, text = _in_a_terminal(args, env, "n")
        assert code == 3, text
        assert "up to 6 credits would be spent: 6 for new pictures" in text
        assert "Go on?" in text and "nothing was sent" in text
        assert emu.counters()["submissions"] == 0 and emu.counters()["requests"] == 0
        # No terminal (cron): never asked; max_credits still caps the run.
        capped = _run(emu, tmp_path, str(photos), "--max-credits", "2", config=cfg)
        assert "Go on?" not in capped.stdout and capped.returncode == 3
        assert emu.counters()["submissions"] == 2
        # Four left, above 3: asked again; "y" goes on.
        code, text = _in_a_terminal(args, env, "y")
        assert code == 0, text
        assert "up to 4 credits" in text
        assert emu.counters()["submissions"] == 6
        # --yes answers; nothing left to spend asks nothing either.
        (photos / "more").mkdir()
        for i in range(4):
            (photos / "more" / f"copy{i}.jpg").write_bytes((photos / "IMG_0000.JPG").read_bytes() + bytes([i]))
        code, text = _in_a_terminal([*args, "--yes"], env, None)
        assert code == 0 and "Go on?" not in text, text
