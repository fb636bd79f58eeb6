"""Several machines, one bill: tagger processes with their own ledgers and trees, one PostgreSQL, one emulator.

Slow: real processes (``python -m tagger``), a real PostgreSQL, the emulator over sockets.
"""

# ruff: noqa: F811  (the PostgreSQL fixtures are imported from tests/pg.py)

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import exiftool_json, make_photo, run_config_file, start_run
from pg import PASSWORD, PgServer, pg_url, postgres  # noqa: F401  (fixtures)
from PIL import Image

from tagger.emulator import Emulator
from tagger.pipeline.dispatch import max_posts_in_flight

SHARED, OWN = 50, 10
IN_FLIGHT = 8
DISTINCT = SHARED + 2 * OWN  # a resized copy is the same picture: one credit


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    """Two trees sharing 50 pictures: 40 byte-equal, 10 resized on the second; 10 of each tree's own."""
    one, two = tmp_path / "one", tmp_path / "two"
    for i in range(SHARED):
        src = make_photo(one / "shared" / f"S{i:03d}.jpg", seed=7000 + i)
        if i < 40:
            (two / "copies").mkdir(parents=True, exist_ok=True)
            (two / "copies" / f"S{i:03d}.jpg").write_bytes(src.read_bytes())
        else:
            im = Image.open(src)
            (two / "resized").mkdir(parents=True, exist_ok=True)
            im.resize((im.width // 2, im.height // 2)).save(two / "resized" / f"S{i:03d}_small.jpg", quality=86)
    for i in range(OWN):
        make_photo(one / "own" / f"A{i:03d}.jpg", seed=8000 + i)
        make_photo(two / "own" / f"B{i:03d}.jpg", seed=9000 + i)
    return one, two


def _start(tmp_path: Path, name: str, tree: Path, emu: Emulator, url: str, lease: float = 2.0) -> subprocess.Popen:
    shared = f'[shared]\nmachine = "{name}"\nlease = {lease}\n'
    config = run_config_file(tmp_path / f"{name}.toml", workers=2, in_flight=IN_FLIGHT, extra=shared)
    ledger, csv_file = tmp_path / f"{name}.sqlite", str(tmp_path / f"{name}.csv")
    # The password comes from the environment, as it should.
    return start_run(tree, ledger, emu, config, "--csv", csv_file, env={"TAGGER_SHARED_URL": url})


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    text = out.decode() + err.decode()
    assert PASSWORD not in text
    return proc.returncode, text


def _complete(tmp_path: Path, name: str, tree: Path) -> None:
    """Every picture of the tree has a caption in its sidecar and its CSV row; the password is nowhere."""
    photos = sorted(tree.rglob("*.jpg"))
    sidecars = [Path(f"{p}.xmp") for p in photos]
    assert all(s.exists() for s in sidecars)
    read = exiftool_json(*sidecars)
    assert len(read) == len(photos) and all(r.get("XMP-dc:Description") for r in read)
    with open(tmp_path / f"{name}.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(photos) and all(r["caption"] for r in rows), rows[:3]
    for path in [tmp_path / f"{name}.sqlite", tmp_path / f"{name}.csv", *sidecars]:
        assert PASSWORD.encode() not in path.read_bytes()


@pytest.mark.slow
def test_two_machines_started_together_pay_once(tmp_path: Path, pg_url: str) -> None:
    one, two = _trees(tmp_path)
    with Emulator(latency=(0.3, 0.8), seed=11) as emu:
        a, b = _start(tmp_path, "one", one, emu, pg_url), _start(tmp_path, "two", two, emu, pg_url)
        (code_a, text_a), (code_b, text_b) = _finish(a), _finish(b)
        counters = emu.counters()
    assert (code_a, code_b) == (0, 0), text_a + text_b
    assert counters["submissions"] == DISTINCT, counters
    assert counters["duplicates"] == 0
    _complete(tmp_path, "one", one)
    _complete(tmp_path, "two", two)
    # One view: every machine's files, as each reported them.
    env = {**os.environ, "TAGGER_SHARED_URL": pg_url}
    out = subprocess.run(
        [sys.executable, "-P", "-m", "tagger", "export", "--shared", "--csv", "-"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = list(csv.DictReader(out.stdout.splitlines()))
    assert {r["machine"] for r in rows} == {"one", "two"}
    assert len(rows) == 2 * (SHARED + OWN) and all(r["caption"] and r["keywords"] for r in rows)
    assert PASSWORD not in out.stdout + out.stderr
    status = subprocess.run(
        [sys.executable, "-P", "-m", "tagger", "status", "--shared"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout.startswith(f"{2 * (SHARED + OWN)} files on 2 machines; {DISTINCT + 10} contents answered")


@pytest.mark.slow
def test_a_machine_killed_mid_run_costs_at_most_its_uploads_in_mid_air(tmp_path: Path, pg_url: str) -> None:
    one, two = _trees(tmp_path)
    with Emulator(latency=(0.5, 1.2), seed=12) as emu:
        a, b = _start(tmp_path, "one", one, emu, pg_url), _start(tmp_path, "two", two, emu, pg_url)
        deadline = time.monotonic() + 120
        while emu.counters()["submissions"] < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        a.send_signal(signal.SIGKILL)
        a.wait()
        code_b, text_b = _finish(b)  # takes over what the dead machine held once its lease lapses
        assert code_b == 0, text_b
        code_a, text_a = _finish(_start(tmp_path, "one", one, emu, pg_url))  # the killed one resumes
        assert code_a == 0, text_a
        counters = emu.counters()
    extra = counters["submissions"] - DISTINCT
    assert 0 <= extra <= max_posts_in_flight(IN_FLIGHT), counters
    _complete(tmp_path, "one", one)
    _complete(tmp_path, "two", two)


@pytest.mark.slow
def test_postgresql_stopped_mid_run_loses_nothing_and_the_next_run_completes(tmp_path: Path) -> None:
    server = PgServer()  # its own cluster, to stop and start (whatever TAGGER_TEST_PG_URL says)
    try:
        url = server.new_database()
        one, _ = _trees(tmp_path)
        with Emulator(latency=(0.5, 1.0), seed=13) as emu:
            proc = _start(tmp_path, "one", one, emu, url)
            deadline = time.monotonic() + 120
            while emu.counters()["submissions"] < 15 and time.monotonic() < deadline:
                time.sleep(0.02)
            server.stop()
            code, text = _finish(proc)
            sent_while_down = emu.counters()["submissions"]
            assert code == 3, text  # stopped early: what had no claim was not sent
            assert "shared store" in text
            con = sqlite3.connect(tmp_path / "one.sqlite")
            pending = con.execute("SELECT count(*) FROM jobs WHERE state = 'queued'").fetchone()[0]
            polling = con.execute("SELECT count(*) FROM jobs WHERE state IN ('polling', 'submitting')").fetchone()[0]
            con.close()
            assert pending > 0 and polling == 0  # tokens in flight were polled to the end and recorded
            server.start()
            code, text = _finish(_start(tmp_path, "one", one, emu, url))
            assert code == 0, text
            counters = emu.counters()
        assert counters["submissions"] == SHARED + OWN and counters["duplicates"] == 0
        assert sent_while_down < SHARED + OWN
        _complete(tmp_path, "one", one)
        import psycopg

        with psycopg.connect(url) as c:  # the answers recorded while the store was down were published
            n = c.execute("SELECT count(*) FROM tagger_contents WHERE state = 'settled'").fetchone()[0]
        assert n == SHARED + OWN
    finally:
        server.close()
