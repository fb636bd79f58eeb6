"""A job's identity gains its locale; endpoints are stored in their normal form; sidecar errors stop failing files.

- ``jobs.locale``: the same content in ``de-DE`` is another job than in
  ``en-US``. The key becomes (content_hash, endpoint, locale). Ledgers
  from before never recorded the locale; their jobs get ``en-US``, the
  default and the only locale the README ever documented.
- ``jobs.endpoint`` and ``runs.endpoint`` in the normal form of
  ``tagger.ledger.keys.normal_endpoint`` (``emulator`` and other ids stay).
  Jobs that were one content under two spellings merge into the most
  settled one; their files and remote URLs follow it.
- ``files.sidecar_error``: why the sidecar could not be written. The file
  stays active and its sidecar is tried again on every run; files that
  older taggers marked failed for that reason alone become active again.

SQLite cannot drop a UNIQUE constraint, so ``jobs`` is rebuilt (the
documented twelve-step way: foreign keys off, outside sqlite-utils' own
transaction, checked before commit). The steps are skipped when they are
already done, so a crash before the migration was recorded is harmless.
"""

from __future__ import annotations

import re
import sqlite3
import urllib.parse

from sqlite_utils import Database

#: The rebuild switches foreign keys off, which only works outside a transaction.
TRANSACTIONAL = False

# Settled answers first: the job whose result the user already has wins a merge.
_RANK = {
    "completed": 0,
    "skipped": 1,
    "polling": 2,
    "submitting": 3,
    "timeout": 4,
    "not_found": 5,
    "failed": 6,
    "queued": 7,
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNIQUE = re.compile(r"UNIQUE\s*\(\s*content_hash\s*,\s*endpoint\s*\)", re.IGNORECASE)


def _normal(endpoint: str) -> str:
    # A frozen copy of tagger.ledger.keys.normal_endpoint as of this migration: what it wrote must not change later.
    text = endpoint.strip()
    if "://" not in text:
        return text
    parts = urllib.parse.urlsplit(text)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else "")
    return urllib.parse.urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def _columns(c: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in c.execute(f"PRAGMA table_info({table})")]


def _merge_endpoints(c: sqlite3.Connection) -> None:
    """Store every endpoint in its normal form, merging jobs that only differed in spelling.

    Works per spelling (a ledger holds a handful), so a million jobs are
    never read into memory; only contents sent under two spellings are merged
    one by one.
    """
    spellings: dict[str, list[str]] = {}
    for (endpoint,) in c.execute("SELECT DISTINCT endpoint FROM jobs").fetchall():
        spellings.setdefault(_normal(endpoint), []).append(endpoint)
    for normal, spelt in spellings.items():
        if spelt == [normal]:
            continue
        marks = ",".join("?" * len(spelt))
        twins = c.execute(
            f"SELECT content_hash FROM jobs WHERE endpoint IN ({marks}) GROUP BY content_hash HAVING count(*) > 1",
            spelt,
        ).fetchall()
        for (digest,) in twins:
            jobs = c.execute(
                f"SELECT id, state FROM jobs WHERE content_hash = ? AND endpoint IN ({marks})", (digest, *spelt)
            ).fetchall()
            jobs.sort(key=lambda j: (_RANK.get(j[1], 9), j[0]))
            winner = jobs[0][0]
            for loser, _ in jobs[1:]:
                c.execute("UPDATE files SET job_id = ? WHERE job_id = ?", (winner, loser))
                # The sidecar held the other spelling's caption: write the winner's (free).
                c.execute("UPDATE files SET written_job = NULL WHERE written_job = ?", (loser,))
                c.execute("UPDATE remote SET job_id = ? WHERE job_id = ?", (winner, loser))
                c.execute("DELETE FROM jobs WHERE id = ?", (loser,))
        c.execute(f"UPDATE jobs SET endpoint = ? WHERE endpoint IN ({marks})", (normal, *spelt))
    for (endpoint,) in c.execute("SELECT DISTINCT endpoint FROM runs").fetchall():
        if _normal(endpoint) != endpoint:
            c.execute("UPDATE runs SET endpoint = ? WHERE endpoint = ?", (_normal(endpoint), endpoint))


def _rebuild_jobs(c: sqlite3.Connection) -> None:
    """Add ``locale`` to the jobs' key, keeping every column, row id and index."""
    c.execute("ALTER TABLE jobs ADD COLUMN locale TEXT NOT NULL DEFAULT 'en-US'")
    c.execute("CREATE INDEX IF NOT EXISTS jobs_endpoint_locale_state ON jobs (endpoint, locale, state)")
    (sql,) = c.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobs'").fetchone()
    new_sql, n = _UNIQUE.subn("UNIQUE (content_hash, endpoint, locale)", sql)
    if n != 1:
        # The old key is not inline (a schema that kept it as a unique index): swap the index, no rebuild.
        for name, unique in [(r[1], r[2]) for r in c.execute("PRAGMA index_list(jobs)")]:
            cols = [r[2] for r in c.execute(f'PRAGMA index_info("{name}")')]
            if unique and cols == ["content_hash", "endpoint"] and not name.startswith("sqlite_autoindex"):
                c.execute(f'DROP INDEX "{name}"')
        c.execute("CREATE UNIQUE INDEX IF NOT EXISTS jobs_key ON jobs (content_hash, endpoint, locale)")
        return
    new_sql = re.sub(r"^CREATE TABLE\s+\"?jobs\"?", "CREATE TABLE jobs_m008", new_sql, count=1)
    indexes = [
        r[0]
        for r in c.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL"
        )
    ]
    c.execute(new_sql)
    columns = ", ".join(_columns(c, "jobs"))
    c.execute(f"INSERT INTO jobs_m008 ({columns}) SELECT {columns} FROM jobs")
    c.execute("DROP TABLE jobs")
    c.execute("ALTER TABLE jobs_m008 RENAME TO jobs")
    # Every index comes back, with jobs_endpoint_locale_state: "does any job belong to another endpoint or
    # locale?" and "this run's queued jobs" read it.
    for index in indexes:
        c.execute(index)


def apply(db: Database) -> None:
    """Normalise endpoints, add the locale to the jobs' key, add ``files.sidecar_error``."""
    c = db.conn
    if "locale" in _columns(c, "jobs") and "sidecar_error" in _columns(c, "files"):
        return
    c.execute("PRAGMA foreign_keys = OFF")
    try:
        c.execute("BEGIN IMMEDIATE")
        try:
            _merge_endpoints(c)
            if "locale" not in _columns(c, "jobs"):
                _rebuild_jobs(c)
            if "sidecar_error" not in _columns(c, "files"):
                c.execute("ALTER TABLE files ADD COLUMN sidecar_error TEXT")
                c.execute(
                    """UPDATE files SET state = 'active', sidecar_error = reason, reason = NULL
                       WHERE state = 'failed' AND reason LIKE 'sidecar not written:%'"""
                )
            broken = c.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"m008: {len(broken)} row(s) would point at no job")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
    finally:
        c.execute("PRAGMA foreign_keys = ON")
