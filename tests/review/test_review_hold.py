"""Review without a browser: a held run writes no sidecar, decisions apply by the merge rules, the CSV round trip."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import exiftool_json

from tagger.config import Config
from tagger.emulator import Emulator
from tagger.exports.readout import iter_records
from tagger.exports.writer import write_export
from tagger.keywords.derive import KeywordRules
from tagger.ledger.review import ReviewFilter
from tagger.ledger.store import Ledger
from tagger.pipeline.runner import make_api, run
from tagger.review import Decision, apply_reviews, record_decisions
from tagger.sidecars.writeback import SidecarOptions

FAST = {"first_poll_delay": 0.1, "poll_interval": 0.05, "max_poll_interval": 0.2, "retry_budget": 20.0}


def config_for(emu: Emulator, tmp_path: Path, **extra) -> Config:
    """A config for ``emu`` with a ledger in ``tmp_path`` and fast timings."""
    return Config(
        **{**FAST, "api_key": emu.key, "endpoint": emu.url, "ledger": str(tmp_path / "ledger.sqlite"), **extra}
    )


def run_config(config: Config, paths, **kwargs):
    """One library run of ``config`` over ``paths``."""
    with make_api(config) as api:
        return run(config, [str(p) for p in paths], api=api, **kwargs)


def sidecars(root: Path) -> list[Path]:
    """Every sidecar under ``root``."""
    return sorted(root.rglob("*.xmp"))


def decisions(config: Config) -> list[tuple]:
    """The review table as rows, for before/after comparisons."""
    con = sqlite3.connect(config.ledger_path)
    try:
        return con.execute(
            "SELECT file_id, job_id, decision, caption, keywords, keyword_paths, decided_at, applied_at FROM reviews"
            " ORDER BY file_id"
        ).fetchall()
    finally:
        con.close()


def held_paths(config: Config) -> dict[str, tuple[int, str, str]]:
    """Display path -> (file id, decision, machine caption) of every held photo."""
    with Ledger(config.ledger_path) as db:
        return {
            os.fsdecode(os.path.join(r[1], r[2])): (r[0], r[3], r[4])
            for r in db.reviews.page(ReviewFilter(), limit=1000)
        }


def tagger_cli(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m tagger`` with this config (the installed package, as a user runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    return subprocess.run(
        [sys.executable, "-P", "-m", "tagger", "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def write_config(config: Config, tmp_path: Path) -> Path:
    """A TOML config naming the ledger (and the emulator's endpoint and key)."""
    path = tmp_path / "tagger.toml"
    path.write_text(
        f'[service]\nendpoint = "{config.endpoint}"\napi_key = "{config.api_key}"\n'
        f'[run]\nledger = "{config.ledger_path}"\n'
    )
    return path


def test_a_held_run_writes_no_sidecar_and_the_exports_say_awaiting_review(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path, hold=True)
    result = run_config(config, [photos])
    assert result.exit_code == 0
    assert emulator.counters()["submissions"] == 6
    assert sidecars(photos) == []  # nothing reached the archive
    held = held_paths(config)
    assert len(held) == 6 and {d for _, d, _ in held.values()} == {"awaiting"}
    assert all(caption for _, _, caption in held.values())  # the captions are in the ledger, paid for once
    with Ledger(config.ledger_path) as db:
        records = list(iter_records(db))
        assert {r.status for r in records} == {"awaiting review"}
        assert all(r.caption for r in records)
        dest = tmp_path / "exif.csv"
        assert write_export(iter_records(db), str(dest), profile="exiftool") == 0  # importers leave them out
        assert write_export(iter_records(db), str(tmp_path / "all.csv")) == 6
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as f:
        assert {row["status"] for row in csv.DictReader(f)} == {"awaiting review"}
    # A second run, without hold, neither sends again nor writes what is held.
    again = run_config(config.replace(hold=False), [photos])
    assert again.exit_code == 0 and emulator.counters()["submissions"] == 6
    assert sidecars(photos) == []


@pytest.mark.slow
def test_approve_edit_reject_then_apply_by_the_merge_rules(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path, hold=True)
    run_config(config, [photos])
    held = held_paths(config)
    a, b, c = (photos / "IMG_0000.JPG", photos / "IMG_0002.JPG", photos / "sub" / "IMG_0001.JPG")
    rules = KeywordRules()
    with Ledger(config.ledger_path) as db:
        n = record_decisions(
            db,
            [
                Decision(held[str(a)][0], "approved"),
                Decision(held[str(b)][0], "edited", caption="A tabby cat asleep on a red sofa"),
                Decision(held[str(c)][0], "rejected"),
            ],
            rules,
        )
        assert n == 3
        applied = apply_reviews(db, SidecarOptions(rules=rules))
    assert applied.decided == 2 and applied.written == 2 and applied.failed == 0
    assert sidecars(photos) == sorted([a.with_name(a.name + ".xmp"), b.with_name(b.name + ".xmp")])
    approved, edited = exiftool_json(a.with_name(a.name + ".xmp"), b.with_name(b.name + ".xmp"))
    assert approved["XMP-dc:Description"] == held[str(a)][2]
    assert approved["XMP-tagger:Review"] == "approved"
    assert edited["XMP-dc:Description"] == "A tabby cat asleep on a red sofa"
    assert edited["XMP-tagger:Review"] == "edited"
    subject = edited["XMP-dc:Subject"]
    assert {"cat", "sofa"} <= set(subject if isinstance(subject, list) else [subject])
    assert emulator.counters()["submissions"] == 6  # the edit's keywords cost nothing

    # A --rewrite-sidecars run, and a changed keyword parent, never revert the person's edit.
    run_config(config.replace(hold=False, keyword_parent="Machine"), [photos], rewrite_sidecars=True)
    (after,) = exiftool_json(b.with_name(b.name + ".xmp"))
    assert after["XMP-dc:Description"] == "A tabby cat asleep on a red sofa"
    assert after["XMP-tagger:Review"] == "edited"
    assert not c.with_name(c.name + ".xmp").exists()  # rejected: no caption anywhere
    with Ledger(config.ledger_path) as db:
        by_path = {r.path: r for r in iter_records(db)}
    assert by_path[str(c)].status == "rejected" and by_path[str(c)].caption is None
    assert by_path[str(b)].caption == "A tabby cat asleep on a red sofa"
    assert "cat" in by_path[str(b)].keywords

    # `tagger retry --rejected PATH` sends the rejected one again (a credit), and it is held again.
    path = write_config(config, tmp_path)
    done = tagger_cli(path, "retry", "--rejected", str(c))
    assert done.returncode == 0, done.stderr
    assert "1 job queued again" in done.stdout and "a credit each" in done.stdout
    run_config(config, [photos])
    assert emulator.counters()["submissions"] == 7
    assert held_paths(config)[str(c)][1] == "awaiting"
    assert not c.with_name(c.name + ".xmp").exists()


def _export_and_read(path: Path, tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    sheet = tmp_path / "review.csv"
    done = tagger_cli(path, "review", "--export", str(sheet))
    assert done.returncode == 0, done.stderr
    with open(sheet, newline="", encoding="utf-8-sig") as f:
        return sheet, list(csv.DictReader(f))


def _write_rows(sheet: Path, rows: list[dict[str, str]]) -> None:
    with open(sheet, "w", newline="", encoding="utf-8-sig") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "caption", "keywords", "decision"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.slow
def test_the_csv_round_trip_applies_exactly_what_the_spreadsheet_says(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path, hold=True)
    run_config(config, [photos])
    path = write_config(config, tmp_path)
    sheet, rows = _export_and_read(path, tmp_path)
    assert [r["decision"] for r in rows] == [""] * 6
    assert list(rows[0]) == ["path", "caption", "keywords", "decision"]
    by_path = {r["path"]: r for r in rows}
    a, b, c = str(photos / "IMG_0000.JPG"), str(photos / "IMG_0002.JPG"), str(photos / "sub" / "IMG_0001.JPG")
    by_path[a]["decision"] = "approve"
    by_path[b]["decision"] = "approve"
    by_path[b]["caption"] = "Two herons by a pond"
    by_path[b]["keywords"] = "heron; pond; birdwatching"
    by_path[c]["decision"] = "reject"
    _write_rows(sheet, rows)
    done = tagger_cli(path, "review", "--import", str(sheet))
    assert done.returncode == 0, done.stderr
    assert "recorded 3 decisions" in done.stdout
    held = held_paths(config)
    assert {p: d for p, (_, d, _) in held.items() if d != "awaiting"} == {a: "approved", b: "edited", c: "rejected"}
    done = tagger_cli(path, "apply")
    assert done.returncode == 0, done.stderr
    assert sidecars(photos) == sorted([Path(a + ".xmp"), Path(b + ".xmp")])
    first, second = exiftool_json(a + ".xmp", b + ".xmp")
    assert first["XMP-dc:Description"] == held[a][2]
    assert second["XMP-dc:Description"] == "Two herons by a pond"
    assert sorted(second["XMP-dc:Subject"]) == ["birdwatching", "heron", "pond"]
    assert second["XMP-tagger:Review"] == "edited"
    assert emulator.counters()["submissions"] == 6


@pytest.mark.slow
def test_a_bad_row_changes_nothing_and_exits_2(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path, hold=True)
    run_config(config, [photos])
    path = write_config(config, tmp_path)
    sheet, rows = _export_and_read(path, tmp_path)
    rows[0]["decision"] = "approve"
    rows[1]["decision"] = "reject"
    for bad in ({"decision": "maybe"}, {"path": str(photos / "no-such.jpg"), "decision": "approve"}):
        trial = [dict(r) for r in rows]
        trial[2].update(bad)
        _write_rows(sheet, trial)
        before = decisions(config)
        done = tagger_cli(path, "review", "--import", str(sheet))
        assert done.returncode == 2, done.stdout + done.stderr
        assert "nothing was changed" in done.stderr and "row 4" in done.stderr
        assert decisions(config) == before
        assert {d for _, _, d, *_ in before} == {"awaiting"}
    assert sidecars(photos) == []
