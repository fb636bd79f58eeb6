"""Schema evolution: a ledger from the first schema upgrades in place; one from a newer tagger is refused untouched."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from tagger.errors import LedgerError
from tagger.ledger.migrations import MIGRATIONS, NAMES
from tagger.ledger.store import JobState, Ledger

ROOT = b"/archive"


def _first_schema_ledger(path: Path) -> None:
    """A ledger exactly as the first release left it: m001 only, in use, with a run, files and jobs."""
    db = sqlite_utils.Database(path)
    db.execute("PRAGMA journal_mode=WAL")
    MIGRATIONS.apply(db, stop_before=list(NAMES[1:]))
    assert [m.name for m in MIGRATIONS.applied(db)] == [NAMES[0]]
    c = db.conn
    c.execute(
        "INSERT INTO runs (started_at, finished_at, endpoint, pid, submitted, exit_code) VALUES (1, 2, 'e', 42, 2, 0)"
    )
    c.execute(
        "INSERT INTO jobs (id, content_hash, endpoint, state, token, caption, created_at, submitted_at, settled_at)"
        " VALUES (1, 'h1', 'e', 'completed', 'tok1', 'a red bicycle', 1, 1.5, 2)"
    )
    c.execute("INSERT INTO jobs (id, content_hash, endpoint, state, created_at) VALUES (2, 'h2', 'e', 'queued', 1)")
    rows = [
        (ROOT + b"/2019", b"a.jpg", 100, 11, "h1", "active", 1, 1),
        (ROOT + b"/2019", b"caf\xe9.jpg", 200, 22, "h2", "active", 2, None),
        (ROOT, b"gone.jpg", 300, 33, "h1", "missing", 1, 1),
    ]
    c.executemany(
        "INSERT INTO files (dir, name, root, size, mtime_ns, content_hash, state, job_id, written_job, first_seen, last_seen)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1)",
        [(d, n, ROOT, s, m, h, st, j, w) for d, n, s, m, h, st, j, w in rows],
    )
    c.commit()
    db.close()


def _dump(path: Path, table: str, columns: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()
    finally:
        con.close()


def _schema(path: Path) -> set[tuple]:
    con = sqlite3.connect(path)
    try:
        return set(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    finally:
        con.close()


FILE_COLUMNS = (
    "id, dir, name, root, size, mtime_ns, content_hash, state, reason, job_id, written_job, first_seen, last_seen"
)
JOB_COLUMNS = "id, content_hash, endpoint, state, token, caption, attempts, created_at, submitted_at, settled_at"
RUN_COLUMNS = "id, started_at, finished_at, endpoint, pid, submitted, exit_code"


def test_a_first_schema_ledger_upgrades_in_place_with_its_data(tmp_path):
    old = tmp_path / "old.sqlite"
    _first_schema_ledger(old)
    before = {
        t: _dump(old, t, cols) for t, cols in (("files", FILE_COLUMNS), ("jobs", JOB_COLUMNS), ("runs", RUN_COLUMNS))
    }
    with Ledger(str(old)) as ledger:
        assert [m.name for m in MIGRATIONS.applied(ledger.db)] == list(NAMES)
        # The upgraded ledger works: its files, jobs and runs are there for the pipeline.
        assert ledger.files.in_folder(ROOT + b"/2019")[b"caf\xe9.jpg"][1:4] == (200, 22, "h2")
        assert [j.id for j in ledger.jobs_in_state("e", JobState.QUEUED)] == [2]
        assert ledger.readout.summary([ROOT])["completed"] == 1
    after = {
        t: _dump(old, t, cols) for t, cols in (("files", FILE_COLUMNS), ("jobs", JOB_COLUMNS), ("runs", RUN_COLUMNS))
    }
    assert after == before
    # Upgraded in place, it has exactly the schema a new ledger gets.
    fresh = tmp_path / "fresh.sqlite"
    Ledger(str(fresh)).close()
    assert _schema(old) == _schema(fresh)
    assert sqlite3.connect(old).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Opening again applies nothing more.
    with Ledger(str(old)) as ledger:
        assert len(MIGRATIONS.applied(ledger.db)) == len(NAMES)


def _future_ledger(path: Path) -> None:
    Ledger(str(path)).close()
    db = sqlite_utils.Database(path)
    db.execute("CREATE TABLE from_the_future (x INTEGER)")
    db["_sqlite_migrations"].insert(
        {"migration_set": "tagger", "name": "m999_from_the_future", "applied_at": "2031-01-01"}
    )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(path) + suffix):
            os.remove(str(path) + suffix)


def test_a_ledger_from_a_newer_tagger_is_refused_and_left_byte_identical(tmp_path):
    path = tmp_path / "ledger.sqlite"
    _future_ledger(path)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(LedgerError, match=r"newer tagger.*m999_from_the_future.*upgrade tagger") as err:
        Ledger(str(path))
    assert err.value.exit_code == 2
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


@pytest.mark.slow
def test_the_cli_says_so_in_a_sentence_and_exits_2(tmp_path):
    path = tmp_path / "ledger.sqlite"
    _future_ledger(path)
    before = path.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    done = subprocess.run(
        [sys.executable, "-P", "-m", "tagger", "status", "--ledger", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "newer tagger" in done.stderr and "Traceback" not in done.stderr
    assert path.read_bytes() == before


# -- ledgers written by earlier releases (tests/data/ledgers/README.md) -------------------------------

STORED = sorted((Path(__file__).parents[1] / "data" / "ledgers").glob("m*.sqlite"))
FIXTURE_PREFIX = b"/tmp/tagger-fixture"
SAMPLES = Path(__file__).parents[2] / "sample_images"


def _restore_archive(base: Path) -> Path:
    """The archive the stored ledgers were made from, rebuilt under ``base`` (a restore from backup)."""
    archive = base / "archive"
    (archive / "2019").mkdir(parents=True)
    for image in sorted(SAMPLES.glob("*.jpg")) + sorted(SAMPLES.glob("*.png")):
        shutil.copy(image, archive / ("2019" if image.name == "rocket.jpg" else "") / image.name)
    shutil.copy(SAMPLES / "coffee.jpg", archive / "2019" / "copy_of_coffee.jpg")
    (archive / "broken.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes()[:5000])
    return archive


def _relocate(path: Path, prefix: bytes) -> None:
    """Point the stored ledger's paths at ``prefix`` instead of /tmp/tagger-fixture."""
    con = sqlite3.connect(path)
    n = len(FIXTURE_PREFIX)
    for table, column in (("files", "dir"), ("files", "root"), ("files", "sidecar"), ("jobs", "source")):
        con.execute(
            f"UPDATE {table} SET {column} = CAST(? || substr({column}, ?) AS BLOB) WHERE substr({column}, 1, ?) = ?",
            (prefix, n + 1, n, FIXTURE_PREFIX),
        )
    con.commit()
    con.close()


def test_every_earlier_release_has_a_stored_ledger():
    schemas = {p.name.split("-")[0] for p in STORED}
    # m004 shipped together with m005; every other schema a release shipped has its own file.
    assert schemas == {"m001", "m002", "m003", "m005", "m006"}


@pytest.mark.slow
@pytest.mark.parametrize("stored", STORED, ids=lambda p: p.stem)
def test_a_stored_ledger_of_an_earlier_release_upgrades_and_sends_nothing_again(stored, tmp_path, emulator):
    from helpers import exiftool_json

    from tagger.config import Config
    from tagger.pipeline import EMULATOR_ENDPOINT, make_api, run

    path = tmp_path / "ledger.sqlite"
    shutil.copy(stored, path)
    with sqlite3.connect(stored) as con:  # read the stored file itself, never modified
        old = [m for (m,) in con.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
        jobs_before = con.execute("SELECT id, content_hash, state, token, caption FROM jobs ORDER BY id").fetchall()
    assert old == list(NAMES[: len(old)])
    _relocate(path, os.fsencode(tmp_path))
    archive = _restore_archive(tmp_path)

    with Ledger(str(path)) as ledger:
        assert [m.name for m in MIGRATIONS.applied(ledger.db)] == list(NAMES)
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = ledger.readout.summary([os.fsencode(archive)])
        assert (counts["completed"], counts["failed"]) == (13, 1)
    fresh = tmp_path / "fresh.sqlite"
    Ledger(str(fresh)).close()
    assert _schema(path) == _schema(fresh)

    # The restored archive (new mtimes, same pixels) costs nothing: every caption comes from the old ledger.
    config = Config(
        api_key=emulator.key,
        endpoint=emulator.url,
        ledger=str(path),
        sidecar_dir=str(tmp_path / "sidecars"),
        first_poll_delay=0.05,
        poll_interval=0.05,
        prepare_in_processes=False,
    )
    with make_api(config) as api:
        result = run(config, [str(archive)], api=api, endpoint_id=EMULATOR_ENDPOINT)
    assert emulator.counters()["submissions"] == 0
    assert result.exit_code == 1  # broken.jpg failed in the old release and stays failed until `retry --failed`
    assert (result.counts["completed"], result.counts["failed"]) == (13, 1)
    with sqlite3.connect(path) as con:
        jobs_after = con.execute("SELECT id, content_hash, state, token, caption FROM jobs ORDER BY id").fetchall()
    captions = lambda rows: sorted((r[2], r[4]) for r in rows)  # noqa: E731 - the identity may be re-keyed, the answers not
    assert captions(jobs_after) == captions(jobs_before)
    # The old captions reach the sidecars again on request, still for no credit.
    with make_api(config) as api:
        again = run(config, [str(archive)], api=api, endpoint_id=EMULATOR_ENDPOINT, rewrite_sidecars=True)
    assert again.sidecars_written == 13 and emulator.counters()["submissions"] == 0
    with sqlite3.connect(stored) as con:
        coffee = {
            c
            for (c,) in con.execute(
                "SELECT j.caption FROM files f JOIN jobs j ON j.id = f.job_id WHERE f.name = ?", (b"coffee.jpg",)
            )
        }
    assert len(coffee) == 1 and "espresso" in next(iter(coffee))
    (meta,) = exiftool_json(tmp_path / "sidecars" / "2019" / "copy_of_coffee.jpg.xmp")
    assert {meta["XMP-dc:Description"]} == coffee
