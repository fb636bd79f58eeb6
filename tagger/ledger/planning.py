"""The planner's SQL: per-folder reads, identity re-keying, what a dry run keeps aside, credits.

``Ledger.planning``; ``tagger.pipeline.plan`` holds only the
decisions. A no-op run reads four narrow columns per file (``lean_rows``)
and asks two questions per run of small indexes; only folders where
something differs are read again in full.

A folder found all done is *marked* (``folder_marks``, m014): the digest of
its files on disk is stored with it. The m014 triggers drop a folder's marks
whenever one of its file rows, or a job linked to one, changes in anything
the planner weighs, so a mark that is there with the same digest means the
folder would read as all done again: a later run reads one row, not one per
file. A mark is written only when nothing was written to the ledger between
the read that found the folder done and the mark (``folder_stamp``), and
marks are read only while all their triggers exist.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from typing import NamedTuple

from tagger.ledger.core import LedgerCore
from tagger.ledger.roots import under_roots

__all__ = ["PlanningQueries", "FullRow", "Stamp", "ToSend", "FileUpsert", "HASH_SCHEME", "MARK_TRIGGERS"]

#: The identity scheme of the hashes the planner writes (``tagger.prepare.hashing.SCHEME``; a test keeps them equal).
HASH_SCHEME = 2

# The last column: 1 for an active, hashed file whose job is for this endpoint (nothing to do), 2 for a
# file already known missing, else 0.
_LEAN = """SELECT name, size, mtime_ns, CASE WHEN state = 'missing' THEN 2
           WHEN state = 'active' AND content_hash IS NOT NULL AND {job} THEN 1 ELSE 0 END FROM files f WHERE dir = ?"""
_FULL = "SELECT name, size, mtime_ns, content_hash, state, {job}, id, hash_scheme FROM files f WHERE dir = ?"
_JOB_ANY = "job_id IS NOT NULL"
_JOB_HERE = "coalesce((SELECT j.endpoint = ? AND j.locale = ? FROM jobs j WHERE j.id = f.job_id), 0)"
_OLD = "hash_scheme IS NULL AND content_hash IS NOT NULL"  # the partial index files_old_scheme (m007)
# Queued jobs this run will send (Ledger.set_scope): a file under the run's roots needs them; a job whose
# files are all gone fails without a POST. Remote images are counted by the runner.
_QUEUED = """SELECT count(*) FROM jobs j WHERE j.endpoint = ? AND j.locale = ? AND j.state IN ('queued', 'submitting')
             AND EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id AND f.state = 'active' AND ({roots}) {gone})"""
# Content a dry run found, as its jobs' keys: found as is, or under the scheme-1 hash a real run would re-key.
_DRY_KEYS = """SELECT hash FROM temp.plan_seen
               UNION SELECT old FROM temp.plan_rekey WHERE new IN (SELECT hash FROM temp.plan_seen)"""


# The m014 triggers that keep folder marks true (tagger.ledger.migrations.m014_noop_indexes.TRIGGERS; a test keeps them equal).
MARK_TRIGGERS = (
    "folder_marks_file_insert",
    "folder_marks_file_delete",
    "folder_marks_file_update",
    "folder_marks_job_insert",
    "folder_marks_job_delete",
    "folder_marks_job_update",
)


class Stamp(NamedTuple):
    """Where the ledger's writes stood when a folder was read (``folder_stamp``)."""

    data_version: int  # bumped by any other connection's commit
    changes: int  # this connection's changes so far


class ToSend(NamedTuple):
    """One content a real run would send (``dry_to_send``)."""

    content_hash: str
    path: bytes | None  # a file holding it, None for a remote image (or when none is known)


class FullRow(NamedTuple):
    """One file of a folder as the planner weighs it."""

    name: bytes
    size: int
    mtime_ns: int
    content_hash: str | None
    state: str
    job_here: int
    id: int
    hash_scheme: int | None


class FileUpsert(NamedTuple):
    """One scanned file as ``Ledger.files.upsert`` writes it (a plain tuple in this order does too)."""

    dir: bytes
    name: bytes
    root: bytes
    size: int
    mtime_ns: int
    content_hash: str | None  # None: it could not be read (``state`` failed, ``reason`` says why)
    state: str
    reason: str | None


class PlanningQueries:
    """The planner's statements (``Ledger.planning``), given the ledger's core."""

    def __init__(self, core: LedgerCore) -> None:
        self._core = core
        self._marks_ok: bool | None = None  # whether the folder marks' triggers exist, checked once

    # -- per folder -----------------------------------------------------------

    def other_endpoints(self, endpoint: str) -> bool:
        """Whether any job belongs to another endpoint or locale (else a file's job needs no check)."""
        # Four index ranges (an OR of them would read every job of this endpoint).
        return bool(
            self._core.query(
                """SELECT 1 FROM jobs WHERE endpoint < ?1 UNION ALL SELECT 1 FROM jobs WHERE endpoint > ?1
               UNION ALL SELECT 1 FROM jobs WHERE endpoint = ?1 AND locale < ?2
               UNION ALL SELECT 1 FROM jobs WHERE endpoint = ?1 AND locale > ?2 LIMIT 1""",
                (endpoint, self._core.locale),
            )
        )

    def lean_rows(self, directory: bytes, endpoint: str | None) -> list[sqlite3.Row]:
        """(name, size, mtime_ns, done) of a folder's files; ``endpoint`` None: any job counts as this one's."""
        if endpoint is None:
            return self._core.query(_LEAN.format(job=_JOB_ANY), (directory,))
        return self._core.query(_LEAN.format(job=_JOB_HERE), (endpoint, self._core.locale, directory))

    # -- folder marks (m014) ------------------------------------------------------

    def _marks_usable(self) -> bool:
        """Whether every trigger that keeps folder marks true exists (checked once per ledger object)."""
        if self._marks_ok is None:
            names = {
                r[0]
                for r in self._core.query(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN ('files', 'jobs')"
                )
            }
            self._marks_ok = set(MARK_TRIGGERS) <= names
        return self._marks_ok

    def folder_marked(self, directory: bytes, endpoint: str, listing: bytes) -> bool:
        """Whether the folder was found all done for this endpoint and locale with these files, and nothing it weighs changed since."""
        if not self._marks_usable():
            return False
        rows = self._core.query(
            "SELECT listing FROM folder_marks WHERE dir = ? AND endpoint = ? AND locale = ?",
            (directory, endpoint, self._core.locale),
        )
        return bool(rows) and rows[0][0] == listing

    def folder_stamp(self) -> Stamp:
        """Where the ledger's writes stand (any connection's commits, this one's changes): taken before reading a folder."""
        return Stamp(*self._core.write_stamp())

    def mark_folder(self, directory: bytes, endpoint: str, listing: bytes, stamp: tuple[int, int]) -> bool:
        """Mark a folder as found all done with these files, unless anything was written since ``stamp``; True when marked.

        The mark is a cache: it is committed without waiting for the disk
        (``synchronous=NORMAL``), since a mark lost in a crash only costs one
        folder read; WAL keeps the order of commits, so it is never kept
        while an earlier change that dropped it is lost.
        """
        if not self._marks_usable():
            return False
        with self._core.transaction(durable=False) as c:
            if (c.execute("PRAGMA data_version").fetchone()[0], c.total_changes) != tuple(stamp):
                return False  # something changed since the folder was read: its reading may be stale
            c.execute(
                "INSERT OR REPLACE INTO folder_marks (dir, endpoint, locale, listing) VALUES (?, ?, ?, ?)",
                (directory, endpoint, self._core.locale, listing),
            )
        return True

    def full_rows(self, directory: bytes, endpoint: str | None) -> dict[bytes, FullRow]:
        """Every file of a folder, by name."""
        if endpoint is None:
            rows = self._core.query(_FULL.format(job=_JOB_ANY), (directory,))
        else:
            rows = self._core.query(_FULL.format(job=_JOB_HERE), (endpoint, self._core.locale, directory))
        return {r[0]: FullRow(*r) for r in rows}

    def content_known(self, digest: str) -> bool:
        """Whether any file (present or gone) has this content."""
        return bool(self._core.query("SELECT 1 FROM files WHERE content_hash = ? LIMIT 1", (digest,)))

    def missing_with(self, digests: Iterable[str]) -> int:
        """How many files known missing hold any of these contents."""
        digests = list(digests)
        return int(
            self._core.query(
                "SELECT count(*) FROM files WHERE state = 'missing' AND content_hash IN (SELECT value FROM json_each(?))",
                (json.dumps(digests),),
            )[0][0]
        )

    def live_in_dir(self, directory: bytes) -> list[sqlite3.Row]:
        """(id, content_hash) of a folder's files not yet known missing."""
        return self._core.query("SELECT id, content_hash FROM files WHERE dir = ? AND state != 'missing'", (directory,))

    # -- identity schemes ---------------------------------------------------------

    def old_scheme_dirs(self, roots: list[bytes]) -> set[bytes]:
        """Folders under ``roots`` holding present files whose hash is still of scheme 1 (from the m007 partial index).

        Each (state, folder range) is one index range, so rows elsewhere (other
        roots, files gone) cost nothing: missing files are never re-keyed.
        """
        sql = f"SELECT DISTINCT dir FROM files INDEXED BY files_old_scheme WHERE {_OLD} AND state = ? AND dir >= ? AND dir < ?"
        found: set[bytes] = set()
        for root in roots:
            root = root.rstrip(b"/") or b"/"
            prefix = root if root == b"/" else root + b"/"
            for state in ("active", "failed"):
                # The root itself, then every folder below it: [root/, root0) in memcmp order ("0" follows "/").
                found.update(r[0] for r in self._core.query(sql, (state, root, root + b"\0")))
                found.update(r[0] for r in self._core.query(sql, (state, prefix, prefix[:-1] + b"0")))
        return found

    def has_old_scheme(self) -> bool:
        """Whether any file, present or gone, still holds a scheme-1 hash."""
        return bool(self._core.query(f"SELECT 1 FROM files INDEXED BY files_old_scheme WHERE {_OLD} LIMIT 1"))

    def old_scheme_known(self, legacy: str) -> bool:
        """Whether a file recorded under scheme 1 has this scheme-1 hash."""
        return bool(
            self._core.query("SELECT 1 FROM files WHERE content_hash = ? AND hash_scheme IS NULL LIMIT 1", (legacy,))
        )

    def rekey(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Move scheme-1 identities to scheme 2: (old hash, new hash) pairs, at no credit.

        Every file recorded with the old hash had the same bytes' identity, so
        they all take the new one, keeping their jobs; each endpoint's job takes
        the new hash too, unless that endpoint already has a job for it (two
        files that differed only in metadata, captioned twice by an older
        tagger): then the planner links the files to that one.
        """
        pairs = sorted(set(pairs))
        if not pairs:
            return
        with self._core.transaction() as c:
            c.executemany(
                f"UPDATE files SET content_hash = ?, hash_scheme = {HASH_SCHEME} WHERE content_hash = ? AND hash_scheme IS NULL",
                [(new, old) for old, new in pairs],
            )
            c.executemany(
                """UPDATE jobs SET content_hash = ? WHERE content_hash = ? AND content_hash != ?
                   AND NOT EXISTS (SELECT 1 FROM jobs j2 WHERE j2.content_hash = ? AND j2.endpoint = jobs.endpoint
                                   AND j2.locale = jobs.locale)""",
                [(new, old, new, new) for old, new in pairs],
            )

    # -- a dry run's notes (temporary tables: never in the ledger file) ---------------

    def dry_plan_begin(self) -> None:
        """Set aside what a dry run would have written: content seen, files gone, identities re-keyed."""
        self.dry_plan_end()
        # A rowid table: the reuse forecast reads the contents back in the order they were found, with a path each.
        self._core.query("CREATE TEMP TABLE plan_seen (hash TEXT PRIMARY KEY, path BLOB)")
        self._core.query("CREATE TEMP TABLE plan_gone (id INTEGER PRIMARY KEY, hash TEXT)")
        self._core.query("CREATE TEMP TABLE plan_rekey (old TEXT PRIMARY KEY, new TEXT NOT NULL) WITHOUT ROWID")
        self._core.query("CREATE INDEX temp.plan_rekey_new ON plan_rekey (new)")

    def dry_plan_end(self) -> None:
        """Drop what a dry run kept aside."""
        for table in ("plan_seen", "plan_gone", "plan_rekey"):
            self._core.query(f"DROP TABLE IF EXISTS temp.{table}")

    def dry_note_seen(self, digests: list[str], paths: list[bytes] | None = None) -> None:
        """Content a real run would have recorded (and, for the reuse forecast, a file holding each)."""
        if not digests:
            return
        if paths is None:
            self._core.query(
                "INSERT OR IGNORE INTO temp.plan_seen (hash) SELECT value FROM json_each(?)", (json.dumps(digests),)
            )
            return
        for digest, path in zip(digests, paths, strict=True):
            self._core.query("INSERT OR IGNORE INTO temp.plan_seen (hash, path) VALUES (?, ?)", (digest, path))

    def dry_note_gone(self, file_ids: list[int]) -> None:
        """Files a real run would have marked missing."""
        if file_ids:
            self._core.query(
                "INSERT OR IGNORE INTO temp.plan_gone SELECT id, content_hash FROM files WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(file_ids),),
            )

    def dry_note_rekey(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Identities a real run would have re-keyed."""
        rows = [[old, new] for old, new in pairs]
        if rows:
            self._core.query(
                "INSERT OR IGNORE INTO temp.plan_rekey SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)",
                (json.dumps(rows),),
            )

    def dry_seen(self, digest: str) -> bool:
        """Whether this dry run already found this content."""
        return bool(self._core.query("SELECT 1 FROM temp.plan_seen WHERE hash = ?", (digest,)))

    def dry_unsent(self, digest: str, endpoint: str) -> bool:
        """Whether a real run would still send this content: no job for it (nor for its re-keyed hash), or one queued."""
        rows = self._core.query(
            """SELECT state FROM jobs WHERE endpoint = ? AND locale = ? AND content_hash IN
               (SELECT ? UNION SELECT old FROM temp.plan_rekey WHERE new = ?)""",
            (endpoint, self._core.locale, digest, digest),
        )
        return all(state in ("queued", "submitting") for (state,) in rows)

    # -- credits ------------------------------------------------------------------

    def queued_credits(self, endpoint: str, roots: list[bytes]) -> int:
        """Queued jobs of the endpoint and locale that files under ``roots`` need: what the run will send."""
        where, params = under_roots(roots)
        return int(self._core.query(_QUEUED.format(roots=where, gone=""), (endpoint, self._core.locale, *params))[0][0])

    def dry_credits(self, endpoint: str, roots: list[bytes]) -> int:
        """The credits a real run would need, from what this dry run set aside."""
        key = (endpoint, self._core.locale)
        # Each lookup is one index probe (the jobs' (content_hash, endpoint, locale) key, plan_rekey's index).
        unknown = self._core.query(
            """SELECT count(*) FROM temp.plan_seen s
               WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.content_hash = s.hash AND j.endpoint = ? AND j.locale = ?)
                 AND NOT EXISTS (SELECT 1 FROM temp.plan_rekey r JOIN jobs j ON j.content_hash = r.old AND j.endpoint = ?
                                 AND j.locale = ? WHERE r.new = s.hash)""",
            (*key, *key),
        )[0][0]
        # As the real run would see them: files found gone no longer count, content found here does.
        where, params = under_roots(roots)
        queued = self._core.query(
            _QUEUED.format(roots=where, gone="AND f.id NOT IN (SELECT id FROM temp.plan_gone)")
            + f" OR (j.endpoint = ? AND j.locale = ? AND j.state IN ('queued', 'submitting') AND j.content_hash IN ({_DRY_KEYS}))",
            (*key, *params, *key),
        )[0][0]
        return int(unknown + queued)

    def dry_to_send(self, endpoint: str, roots: list[bytes]) -> list[ToSend]:
        """What ``dry_credits`` counts, as (content hash, a file holding it or None), queued jobs first, as a run sends them."""
        key = (endpoint, self._core.locale)
        where, params = under_roots(roots)
        queued = self._core.query(
            f"""SELECT j.content_hash,
                      (SELECT f.dir FROM files f WHERE f.job_id = j.id AND f.state = 'active'
                         AND f.id NOT IN (SELECT id FROM temp.plan_gone) ORDER BY f.id LIMIT 1),
                      (SELECT f.name FROM files f WHERE f.job_id = j.id AND f.state = 'active'
                         AND f.id NOT IN (SELECT id FROM temp.plan_gone) ORDER BY f.id LIMIT 1),
                      (SELECT s.path FROM temp.plan_seen s WHERE s.hash = j.content_hash),
                      EXISTS (SELECT 1 FROM remote r WHERE r.job_id = j.id),
                      j.content_hash IN ({_DRY_KEYS}),
                      EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id AND f.state = 'active' AND ({where}))
               FROM jobs j WHERE j.endpoint = ? AND j.locale = ? AND j.state IN ('queued', 'submitting') ORDER BY j.id""",
            (*params, *key),
        )
        out: list[ToSend] = []
        for digest, directory, name, seen, remote, found, in_scope in queued:
            if directory is not None and in_scope:
                out.append(ToSend(digest, os.path.join(directory, name)))
            elif directory is not None:
                if found:  # another run's job, found again under this run's roots
                    out.append(ToSend(digest, bytes(seen) if seen is not None else None))
            elif remote:
                out.append(ToSend(digest, None))  # a URL: nothing to decode
            elif found:
                out.append(ToSend(digest, bytes(seen) if seen is not None else None))
            # else every file is gone: the run fails it without a POST, and dry_credits does not count it
        out += [
            ToSend(r[0], bytes(r[1]) if r[1] is not None else None)
            for r in self._core.query(
                """SELECT s.hash, s.path FROM temp.plan_seen s
                   WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.content_hash = s.hash AND j.endpoint = ? AND j.locale = ?)
                     AND NOT EXISTS (SELECT 1 FROM temp.plan_rekey r JOIN jobs j ON j.content_hash = r.old AND j.endpoint = ?
                                     AND j.locale = ? WHERE r.new = s.hash)
                   ORDER BY s.rowid""",
                (*key, *key),
            )
        ]
        return out
