"""The ledger's SQL for files on disk and remote images: what a scan found, and linking them to jobs.

``Ledger.files``; ``tagger.pipeline.plan`` and ``intake`` decide what to record, ``tagger.sidecars.readers``
asks where a file's sidecar went.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from tagger.ledger.core import LedgerCore
from tagger.ledger.planning import HASH_SCHEME, FileUpsert

__all__ = ["FileQueries", "KnownFile", "Claim"]


class KnownFile(NamedTuple):
    """One file of a folder as the ledger knows it (``FileQueries.in_folder``)."""

    id: int
    size: int
    mtime_ns: int
    content_hash: str | None
    state: str


class Claim(NamedTuple):
    """What claiming a file did (``FileQueries.claim``)."""

    file_id: int
    job_id: int
    created: bool  # its content's first file: the caller sends the job


class FileQueries:
    """The files' statements (``Ledger.files``), given the ledger's core."""

    def __init__(self, core: LedgerCore) -> None:
        self._core = core

    def in_folder(self, directory: bytes) -> dict[bytes, KnownFile]:
        """The ledger's files in one folder, by name."""
        rows = self._core.query(
            "SELECT name, id, size, mtime_ns, content_hash, state FROM files WHERE dir = ?", (directory,)
        )
        return {r[0]: KnownFile(*r[1:]) for r in rows}

    def root_of(self, directory: bytes, name: bytes) -> bytes | None:
        """The run root the ledger last saw this file under (where a ``sidecar_dir`` mirror starts), None if unknown."""
        rows = self._core.query("SELECT root FROM files WHERE dir = ? AND name = ?", (directory, name))
        return rows[0][0] if rows else None

    def sidecar_written(self, directory: bytes, name: bytes) -> bytes | None:
        """Where this file's sidecar was last written (recorded after the rename), None if never."""
        rows = self._core.query("SELECT sidecar FROM files WHERE dir = ? AND name = ?", (directory, name))
        return rows[0][0] if rows and rows[0][0] else None

    def known_dirs(self, root: bytes) -> list[bytes]:
        """Folders at or under ``root`` that hold ledger rows (missing ones too), read from the (dir, name) index.

        One index probe per folder (each step seeks the next folder name), not a read of every file's entry.
        """
        root = root.rstrip(b"/") or b"/"
        prefix = root if root == b"/" else root + b"/"
        found = (
            [root] if root != prefix and self._core.query("SELECT 1 FROM files WHERE dir = ? LIMIT 1", (root,)) else []
        )
        # Every folder below root sorts in [root/, root0) in memcmp order ("0" follows "/"): see under_roots.
        return found + [
            r[0]
            for r in self._core.query(
                """WITH RECURSIVE d(dir) AS (
                 SELECT (SELECT min(dir) FROM files WHERE dir >= ?1 AND dir < ?2)
                 UNION ALL SELECT (SELECT min(dir) FROM files WHERE dir > d.dir AND dir < ?2) FROM d WHERE d.dir IS NOT NULL
               ) SELECT dir FROM d WHERE dir IS NOT NULL""",
                (prefix, prefix[:-1] + b"0"),
            )
        ]

    def upsert(self, rows: Sequence[FileUpsert | tuple[Any, ...]]) -> None:
        """Insert or update scanned files in bulk.

        Each row is a ``FileUpsert`` (dir, name, root, size, mtime_ns, content_hash, state, reason); the
        hashes are of the current identity scheme (``HASH_SCHEME``).
        """
        now = self._core.now()
        with self._core.transaction() as c:
            c.executemany(
                f"""INSERT INTO files (dir, name, root, size, mtime_ns, content_hash, state, reason, first_seen, last_seen, hash_scheme)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ?6 IS NULL THEN NULL ELSE {HASH_SCHEME} END)
                   ON CONFLICT (dir, name) DO UPDATE SET root = excluded.root, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, state = excluded.state,
                     reason = excluded.reason, last_seen = excluded.last_seen, hash_scheme = excluded.hash_scheme,
                     job_id = CASE WHEN files.content_hash IS excluded.content_hash THEN files.job_id ELSE NULL END""",
                [(*r, now, now) for r in rows],
            )

    def mark_missing(self, directory: bytes, names: Iterable[bytes]) -> int:
        """Mark files gone from disk as missing (they stay in the ledger)."""
        with self._core.transaction() as c:
            cur = c.executemany(
                "UPDATE files SET state = 'missing' WHERE dir = ? AND name = ? AND state != 'missing'",
                [(directory, n) for n in names],
            )
            return cur.rowcount

    def mark_dir_missing(self, directory: bytes) -> int:
        """Mark every file of a vanished folder as missing."""
        with self._core.transaction() as c:
            return c.execute(
                "UPDATE files SET state = 'missing' WHERE dir = ? AND state != 'missing'", (directory,)
            ).rowcount

    def link_folder(
        self, endpoint: str, directory: bytes, hashes: Iterable[str], pairs: Iterable[tuple[bytes, bytes]] = ()
    ) -> int:
        """Give the active files of one folder with these contents a job at ``endpoint``.

        Content the endpoint already has a job for (a copy, a move, a metadata
        edit) links to that job and costs nothing; returns jobs created.
        ``pairs`` are (RAW name, JPEG name): the RAW file shares the JPEG's
        job (one submission, both sidecars), or gets its own when the JPEG
        has none. Files elsewhere keep their own links: another endpoint's
        caption is never replaced by a run that did not look at them.
        """
        digests = sorted(set(hashes))
        pairs = list(pairs)
        if not digests and not pairs:
            return 0
        now = self._core.now()
        link = """UPDATE files SET job_id = (SELECT id FROM jobs WHERE jobs.content_hash = files.content_hash
                  AND jobs.endpoint = ? AND jobs.locale = ?)
                  WHERE dir = ? AND state = 'active' AND content_hash IN (SELECT value FROM json_each(?))"""
        create = "INSERT OR IGNORE INTO jobs (content_hash, endpoint, locale, source, state, created_at) VALUES (?, ?, ?, NULL, 'queued', ?)"
        locale = self._core.locale
        with self._core.transaction() as c:
            before = c.total_changes
            c.executemany(create, [(d, endpoint, locale, now) for d in digests])
            created = c.total_changes - before
            c.execute(link, (endpoint, locale, directory, json.dumps(digests)))
            for raw, jpeg in pairs:
                row = c.execute(
                    "SELECT job_id FROM files WHERE dir = ? AND name = ? AND state = 'active'", (directory, jpeg)
                ).fetchone()
                if row and row[0] is not None:
                    c.execute("UPDATE files SET job_id = ? WHERE dir = ? AND name = ?", (row[0], directory, raw))
                    continue
                own = c.execute(
                    "SELECT content_hash FROM files WHERE dir = ? AND name = ?", (directory, raw)
                ).fetchone()
                if own and own[0]:
                    before = c.total_changes
                    c.execute(create, (own[0], endpoint, locale, now))
                    created += c.total_changes - before
                    c.execute(link, (endpoint, locale, directory, json.dumps([own[0]])))
            return created

    def claim(
        self, endpoint: str, directory: bytes, name: bytes, root: bytes, size: int, mtime_ns: int, digest: str
    ) -> Claim:
        """Record a file hashed by the run's intake and give it a job at ``endpoint``.

        One transaction: the first file to claim a content creates its job
        (``created``: the caller sends it); any later file of that content,
        in this run or another, links to the same job and costs nothing. The
        file keeps its job when its content is as recorded (a metadata edit).
        """
        now = self._core.now()
        with self._core.transaction() as c:
            c.execute(
                f"""INSERT INTO files (dir, name, root, size, mtime_ns, content_hash, state, reason, first_seen, last_seen, hash_scheme)
                   VALUES (?, ?, ?, ?, ?, ?, 'active', NULL, ?, ?, {HASH_SCHEME})
                   ON CONFLICT (dir, name) DO UPDATE SET root = excluded.root, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, state = 'active',
                     reason = NULL, last_seen = excluded.last_seen, hash_scheme = excluded.hash_scheme,
                     job_id = CASE WHEN files.content_hash IS excluded.content_hash THEN files.job_id ELSE NULL END""",
                (directory, name, root, size, mtime_ns, digest, now, now),
            )
            before = c.total_changes
            c.execute(
                "INSERT OR IGNORE INTO jobs (content_hash, endpoint, locale, source, state, created_at) VALUES (?, ?, ?, NULL, 'queued', ?)",
                (digest, endpoint, self._core.locale, now),
            )
            created = c.total_changes > before
            job_id = c.execute(
                "SELECT id FROM jobs WHERE content_hash = ? AND endpoint = ? AND locale = ?",
                (digest, endpoint, self._core.locale),
            ).fetchone()[0]
            file_id = c.execute("SELECT id FROM files WHERE dir = ? AND name = ?", (directory, name)).fetchone()[0]
            c.execute("UPDATE files SET job_id = ? WHERE id = ?", (job_id, file_id))
            return Claim(file_id, job_id, created)

    def add_urls(self, urls: list[tuple[str, str]], endpoint: str) -> int:
        """Record remote images as (url, key) pairs, each with a job; returns jobs created."""
        now = self._core.now()
        with self._core.transaction() as c:
            before = c.execute("SELECT count(*) FROM jobs").fetchone()[0]
            c.executemany(
                "INSERT OR IGNORE INTO jobs (content_hash, endpoint, locale, source, state, created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                [(key, endpoint, self._core.locale, url.encode("utf-8"), now) for url, key in urls],
            )
            c.executemany(
                """INSERT INTO remote (url, job_id, first_seen, last_seen)
                   VALUES (?, (SELECT id FROM jobs WHERE content_hash = ? AND endpoint = ? AND locale = ?), ?, ?)
                   ON CONFLICT (url) DO UPDATE SET job_id = excluded.job_id, last_seen = excluded.last_seen""",
                [(url, key, endpoint, self._core.locale, now, now) for url, key in urls],
            )
            return int(c.execute("SELECT count(*) FROM jobs").fetchone()[0] - before)

    def mark_failed(self, file_id: int, reason: str) -> None:
        """A file-level failure (unreadable)."""
        with self._core.transaction() as c:
            c.execute("UPDATE files SET state = 'failed', reason = ? WHERE id = ?", (reason, file_id))
