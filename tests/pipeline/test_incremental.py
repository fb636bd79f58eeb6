"""Incremental runs: new, changed, moved, renamed, copied, deleted and re-tagged files in one tree.

The pipeline runs in-process against the emulator over real sockets; exiftool
edits metadata and reads the sidecars back; the plan is checked against what
the emulator was actually sent.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import config_for, dry_with, exiftool_json, make_photo, run_with
from PIL import Image

from tagger.cli import cli
from tagger.ledger.store import Ledger
from tagger.pipeline.plan import plan


def _dark(path: Path) -> Path:
    """An image the emulator skips as 'dark' (a credit spent, no caption)."""
    noise = Image.effect_noise((320, 240), 8).point(lambda v: v // 12).convert("RGB")
    path.parent.mkdir(parents=True, exist_ok=True)
    noise.save(path, quality=90)
    return path


def _rows(ledger: Path, sql: str, params: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(ledger)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _file(ledger: Path, path: Path) -> tuple:
    """(state, job_id, written_job, job caption, job token) of one file."""
    (row,) = _rows(
        ledger,
        "SELECT f.state, f.job_id, f.written_job, j.caption, j.token FROM files f LEFT JOIN jobs j ON j.id = f.job_id"
        " WHERE f.dir = ? AND f.name = ?",
        (os.fsencode(path.parent), os.fsencode(path.name)),
    )
    return row


def _description(image: Path) -> str:
    (meta,) = exiftool_json(image.with_name(image.name + ".xmp"))
    return meta["XMP-dc:Description"]


def _export(ledger: Path, dest: Path, *extra: str) -> set[str]:
    result = CliRunner().invoke(
        cli, ["export", "--csv", str(dest), "--ledger", str(ledger), *extra], env={"TAGGER_CONFIG": ""}
    )
    assert result.exit_code == 0, result.output
    with dest.open(encoding="utf-8") as f:
        return {r["path"] for r in csv.DictReader(f)}


@pytest.mark.slow
def test_every_kind_of_change_in_one_run(emulator, tmp_path):
    root = tmp_path / "photos"
    album = root / "album"
    for i, name in enumerate("abcdefg"):
        make_photo(album / f"{name}.jpg", seed=100 + i, size=(320, 240))
    night = _dark(album / "night.jpg")
    config = config_for(emulator, tmp_path)
    ledger = Path(config.ledger_path)
    first = run_with(emulator, config, [root])
    assert first.exit_code == 0, first.stopped
    assert first.plan.new == 8 and first.plan.credits == 8
    assert emulator.counters()["submissions"] == 8
    before = {p.name: _file(ledger, p) for p in album.iterdir() if p.suffix == ".jpg"}
    assert before["night.jpg"][3] is None  # skipped: no caption
    night_job = "SELECT j.state, j.reason, j.attempts FROM jobs j JOIN files f ON f.job_id = j.id WHERE f.name = ?"
    assert _rows(ledger, night_job, (b"night.jpg",)) == [("skipped", "dark", 1)]

    # changed: new pixels at the same path (and a later mtime, as an editor leaves it)
    b = album / "b.jpg"
    old_mtime = b.stat().st_mtime_ns
    make_photo(b, seed=999, size=(320, 240))
    os.utime(b, ns=(old_mtime + 5_000_000_000, old_mtime + 5_000_000_000))
    # moved to another folder, renamed in place, copied, deleted
    (root / "other").mkdir()
    shutil.move(album / "c.jpg", root / "other" / "c.jpg")
    os.rename(album / "d.jpg", album / "d2.jpg")
    (root / "copies").mkdir()
    shutil.copy2(album / "e.jpg", root / "copies" / "e_copy.jpg")
    os.remove(album / "f.jpg")
    # metadata only: the user tagged it with exiftool; the pixels are the same
    g = album / "g.jpg"
    g_stat = g.stat()
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Description=x", str(g)], check=True)
    assert g.stat().st_size != g_stat.st_size
    # new
    make_photo(root / "new" / "h.jpg", seed=500, size=(320, 240))

    # Two moves and one deletion: the moves are not counted as missing too.
    expected = dict(
        new=1,
        changed=1,
        moved=2,
        copied=1,
        missing=1,
        unchanged=4,
        unreadable=0,
        paired=0,
        adopted=0,
        excluded=0,
        known_failures=0,
        credits=2,
        similar=0,
    )
    emulator.reset_counters()
    files_before = _rows(ledger, "SELECT * FROM files ORDER BY id")
    dry = dry_with(emulator, config, [root])
    assert dry.plan.as_dict() == expected
    assert emulator.counters()["requests"] == 0
    assert _rows(ledger, "SELECT * FROM files ORDER BY id") == files_before  # a dry run writes nothing

    second = run_with(emulator, config, [root])
    assert second.exit_code == 0, second.stopped
    assert second.plan.as_dict() == expected
    counters = emulator.counters()
    assert counters["submissions"] == 2 and counters["duplicates"] == 0  # b's new pixels and h

    # changed: a new job, and its sidecar holds the new caption
    state, job, written, caption, token = _file(ledger, b)
    assert state == "active" and job != before["b.jpg"][1] and written == job
    assert token != before["b.jpg"][4]
    assert _description(b) == caption
    # moved, renamed, copied, re-tagged: the old caption, no submission
    kept = {
        root / "other" / "c.jpg": "c.jpg",
        album / "d2.jpg": "d.jpg",
        root / "copies" / "e_copy.jpg": "e.jpg",
        g: "g.jpg",
    }
    for path, was in kept.items():
        state, job, written, caption, _ = _file(ledger, path)
        assert (state, job, written) == ("active", before[was][1], before[was][1]), path
        assert _description(path) == before[was][3], path
    # deleted (and the old paths of the moves): kept in the ledger as missing
    for gone in ("c.jpg", "d.jpg", "f.jpg"):
        assert _file(ledger, album / gone)[0] == "missing"
    assert _file(ledger, night)[:2] == ("active", before["night.jpg"][1])

    present = {
        "album/a.jpg",
        "album/b.jpg",
        "album/d2.jpg",
        "album/e.jpg",
        "album/g.jpg",
        "album/night.jpg",
        "other/c.jpg",
        "copies/e_copy.jpg",
        "new/h.jpg",
    }
    assert _export(ledger, tmp_path / "out.csv") == present
    assert _export(ledger, tmp_path / "all.csv", "--include-missing") == present | {
        "album/c.jpg",
        "album/d.jpg",
        "album/f.jpg",
    }

    # A plain re-run sends nothing: not the skipped image, not anything else.
    emulator.reset_counters()
    third = run_with(emulator, config, [root])
    assert third.exit_code == 0
    assert third.plan.as_dict() == dict(
        new=0,
        changed=0,
        moved=0,
        copied=0,
        missing=0,
        unchanged=9,
        unreadable=0,
        paired=0,
        adopted=0,
        excluded=0,
        known_failures=0,
        credits=0,
        similar=0,
    )
    assert emulator.counters()["submissions"] == 0
    assert _rows(ledger, night_job, (b"night.jpg",)) == [("skipped", "dark", 1)]


def _plan(tmp_path: Path, root: Path, *, dry_run: bool) -> dict[str, int]:
    with Ledger(str(tmp_path / "ledger.sqlite")) as ledger:
        return plan(ledger, [str(root)], "e", dry_run=dry_run).as_dict()


def test_a_copy_of_a_file_new_in_the_same_run_costs_one_credit(tmp_path):
    root = tmp_path / "photos"
    make_photo(root / "one" / "a.jpg", seed=1, size=(160, 120))
    shutil.copy(root / "one" / "a.jpg", root / "one" / "a_copy.jpg")  # same folder
    make_photo(root / "two" / "b.jpg", seed=2, size=(160, 120))
    shutil.copy(root / "one" / "a.jpg", root / "two" / "a.jpg")  # another folder
    expected = dict(
        new=2,
        changed=0,
        moved=0,
        copied=2,
        missing=0,
        unchanged=0,
        unreadable=0,
        paired=0,
        adopted=0,
        excluded=0,
        known_failures=0,
        credits=2,
        similar=0,
    )
    assert _plan(tmp_path, root, dry_run=True) == expected
    assert _plan(tmp_path, root, dry_run=False) == expected
    assert _rows(tmp_path / "ledger.sqlite", "SELECT count(*), count(DISTINCT job_id) FROM files") == [(4, 2)]


def test_a_vanished_folder_is_missing_and_its_moved_files_are_moves(tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        make_photo(root / "2019" / f"{i}.jpg", seed=i, size=(160, 120))
    make_photo(root / "keep" / "k.jpg", seed=9, size=(160, 120))
    assert _plan(tmp_path, root, dry_run=False)["new"] == 4
    shutil.move(root / "2019" / "0.jpg", root / "keep" / "0.jpg")
    shutil.rmtree(root / "2019")
    # Nothing was submitted yet: the queued jobs of the two files still on disk are the credits.
    expected = dict(
        new=0,
        changed=0,
        moved=1,
        copied=0,
        missing=2,
        unchanged=1,
        unreadable=0,
        paired=0,
        adopted=0,
        excluded=0,
        known_failures=0,
        credits=2,
        similar=0,
    )
    assert _plan(tmp_path, root, dry_run=True) == expected
    assert _plan(tmp_path, root, dry_run=False) == expected
    assert _plan(tmp_path, root, dry_run=False) == dict(expected, moved=0, missing=0, unchanged=2)
    states = _rows(
        tmp_path / "ledger.sqlite",
        "SELECT name, state FROM files WHERE dir = ? ORDER BY name",
        (os.fsencode(root / "2019"),),
    )
    assert states == [(b"0.jpg", "missing"), (b"1.jpg", "missing"), (b"2.jpg", "missing")]


def test_a_file_back_where_it_was_is_active_again_without_a_submission(tmp_path):
    root = tmp_path / "photos"
    image = make_photo(root / "a.jpg", seed=3, size=(160, 120))
    _plan(tmp_path, root, dry_run=False)
    kept = tmp_path / "kept.jpg"
    shutil.move(image, kept)
    assert _plan(tmp_path, root, dry_run=False)["missing"] == 1
    shutil.move(kept, image)  # same size and mtime: the (size, mtime_ns) check alone decides
    assert _plan(tmp_path, root, dry_run=False) == dict(
        new=0,
        changed=0,
        moved=0,
        copied=0,
        missing=0,
        unchanged=1,
        unreadable=0,
        paired=0,
        adopted=0,
        excluded=0,
        known_failures=0,
        credits=1,
        similar=0,
    )
    assert _rows(tmp_path / "ledger.sqlite", "SELECT state FROM files") == [("active",)]


@pytest.mark.slow
def test_the_dry_run_and_the_real_run_print_the_same_words_and_a_move_is_not_missing(tmp_path):
    import re
    import sys

    root = tmp_path / "photos"
    for name in ("a", "b", "c"):
        make_photo(root / "album" / f"{name}.jpg", seed=ord(name), size=(160, 120))
    cfg = tmp_path / "fast.toml"
    cfg.write_text("[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n")
    ledger = str(tmp_path / "l.sqlite")

    def tagger(*args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
        out = subprocess.run(
            [
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
                ledger,
                *args,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        (line,) = [line for line in out.stdout.splitlines() if line.startswith("plan: ")]
        return line

    tagger()
    (root / "elsewhere").mkdir()
    shutil.move(root / "album" / "a.jpg", root / "elsewhere" / "a.jpg")  # one move
    os.remove(root / "album" / "b.jpg")  # one deletion
    dry, real = tagger("--dry-run"), tagger()
    words = (
        "plan: 0 new, 0 changed, 1 moved, 0 copied, 1 missing, 1 unchanged, 0 unreadable, 0 RAW captioned from their JPEG, "
        "0 adopted from their sidecars"
    )
    assert real == words
    assert re.fullmatch(re.escape(words) + r"; 0 credits would be spent.*", dry)
