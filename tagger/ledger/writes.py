"""The ledger's SQL for writing captions out: derived keywords, sidecar bookkeeping, and adopting what sidecars hold.

``Ledger.writes``; ``tagger.sidecars.writeback``, ``derivation`` and ``adopt`` hold the decisions.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from typing import Any, NamedTuple

from tagger.ledger.core import LedgerCore
from tagger.ledger.roots import under_roots
from tagger.ledger.similarity import LENDER_FILE

__all__ = ["WriteQueries", "WordCount", "Unwritten", "Adoptable"]


class WordCount(NamedTuple):
    """A word the vocabulary lacked, and how many photos it came from."""

    word: str
    photos: int


class Unwritten(NamedTuple):
    """An active file whose completed caption is not yet in its sidecar, with its job (``WriteQueries.unwritten``)."""

    file_id: int
    dir: bytes
    name: bytes
    root: bytes
    content_hash: str | None
    job_id: int
    token: str | None
    endpoint: str
    locale: str
    caption: str | None
    flags: str | None  # JSON
    categories: str | None  # JSON
    status: str | None
    reason: str | None
    settled_at: float | None
    keywords: str | None  # JSON, as stored under ``keyword_rules``
    keyword_paths: str | None  # JSON
    keyword_rules: str | None
    lender_dir: bytes | None  # a file of the similar photo whose caption it shares (None: it shares none)
    lender_name: bytes | None


class Adoptable(NamedTuple):
    """A file of one of this run's unsent jobs, whose sidecar may hold its caption (``WriteQueries.adoptable``)."""

    job_id: int
    job_hash: str  # the job's content
    file_id: int
    dir: bytes
    name: bytes
    root: bytes
    content_hash: str  # the file's own (a RAW file shares its JPEG's job)


class WriteQueries:
    """What writing sidecars and keywords, and adopting sidecar captions, reads and writes (``Ledger.writes``), given the ledger's core."""

    def __init__(self, core: LedgerCore) -> None:
        self._core = core

    def stale_keywords(
        self, rules: str, job_id: int | None = None, limit: int = 1000, after_id: int = 0
    ) -> list[sqlite3.Row]:
        """(id, caption, categories) of completed jobs whose keywords were not derived under ``rules``, a page at a time."""
        sql = """SELECT id, caption, categories FROM jobs
                 WHERE state = 'completed' AND keyword_rules IS NOT ? AND id > ?"""
        params: list[Any] = [rules, after_id]
        if job_id is not None:
            sql += " AND id = ?"
            params.append(job_id)
        return self._core.query(sql + " ORDER BY id LIMIT ?", (*params, limit))

    def has_stale_keywords(self, rules: str) -> bool:
        """Whether any completed job's keywords were not derived under ``rules`` (three ranges of a small index)."""
        # ``IS NOT ?`` split into the ranges of the jobs_keyword_rules partial index (m014): a ledger whose
        # keywords are all current answers without reading its jobs.
        probe = "SELECT 1 FROM jobs INDEXED BY jobs_keyword_rules WHERE state = 'completed' AND keyword_rules"
        return bool(
            self._core.query(f"{probe} IS NULL UNION ALL {probe} < ?1 UNION ALL {probe} > ?1 LIMIT 1", (rules,))
        )

    def store_keywords(self, rules: str, rows: Iterable[tuple[int, str, str, str]]) -> None:
        """Record derived keywords: rows of (job id, keywords, keyword_paths, unmapped), each JSON."""
        with self._core.transaction() as c:
            # Only a job still completed: a retry may have cleared its caption meanwhile.
            c.executemany(
                """UPDATE jobs SET keywords = ?, keyword_paths = ?, unmapped = ?, keyword_rules = ?
                   WHERE id = ? AND state = 'completed'""",
                [(k, p, u, rules, job) for job, k, p, u in rows],
            )

    def unmapped_counts(self) -> list[WordCount]:
        """Words the vocabulary lacked, with how many photos (files on disk and remote images) they came from."""
        rows = self._core.query(
            """SELECT u.value, count(*) FROM (
                 SELECT f.job_id AS job FROM files f WHERE f.state != 'missing'
                 UNION ALL SELECT r.job_id FROM remote r) AS photos
               JOIN jobs j ON j.id = photos.job AND j.state = 'completed', json_each(j.unmapped) AS u
               GROUP BY u.value"""
        )
        return sorted((WordCount(r[0], r[1]) for r in rows), key=lambda wc: (-wc.photos, wc.word.casefold(), wc.word))

    def unwritten(self, job_id: int | None = None, roots: list[bytes] | None = None) -> list[Unwritten]:
        """Active files (under ``roots`` when given) whose completed caption is not yet in their sidecar.

        A file follows its current job: the endpoint and locale of the latest run over it.
        """
        sql = f"""SELECT f.id, f.dir, f.name, f.root, f.content_hash, j.id, j.token, j.endpoint, j.locale, j.caption, j.flags,
                        j.categories, j.status, j.reason, j.settled_at, j.keywords, j.keyword_paths, j.keyword_rules, {LENDER_FILE}
                 FROM files f CROSS JOIN jobs j ON j.id = f.job_id
                 WHERE f.state = 'active' AND f.written_job IS NOT f.job_id AND j.state = 'completed'"""
        # CROSS JOIN keeps files outer, read from the small files_unwritten partial index; the planner
        # would otherwise walk every completed job.
        params: list[Any] = []
        if job_id is not None:
            sql += " AND j.id = ?"
            params.append(job_id)
        if roots is not None:
            # Filtered, not indexed: the files_unwritten partial index stays the driver (empty when all is written).
            where, where_params = under_roots(roots, "+f.dir")
            sql += f" AND ({where})"
            params += where_params
        return [Unwritten(*r) for r in self._core.query(sql, params)]

    def mark_written(
        self, file_id: int, job_id: int, sidecar: bytes | None, keywords: tuple[str, str, str, str] | None = None
    ) -> None:
        """Record that a sidecar now holds this job's caption (called after the rename).

        ``keywords`` (rules digest, keywords, keyword_paths, unmapped) are the job's keywords that
        sidecar got, stored in the same transaction: one commit per written file, not two.
        """
        with self._core.transaction() as c:
            c.execute(
                "UPDATE files SET written_job = ?, written_at = ?, sidecar = ?, sidecar_error = NULL WHERE id = ?",
                (job_id, self._core.now(), sidecar, file_id),
            )
            if keywords is not None:
                rules, subject, paths, unmapped = keywords
                c.execute(
                    "UPDATE jobs SET keywords = ?, keyword_paths = ?, unmapped = ?, keyword_rules = ? WHERE id = ? AND state = 'completed'",
                    (subject, paths, unmapped, rules, job_id),
                )

    def sidecar_failed(self, file_id: int, reason: str) -> None:
        """The sidecar could not be written: recorded, and tried again on every run (the file stays active)."""
        with self._core.transaction() as c:
            c.execute("UPDATE files SET sidecar_error = ? WHERE id = ?", (reason, file_id))

    def adoptable(self, endpoint: str) -> list[Adoptable]:
        """Files of this run's unsent jobs (see ``Ledger.set_scope``), by job."""
        rows = self._core.query(
            """SELECT j.id, j.content_hash, f.id, f.dir, f.name, f.root, f.content_hash FROM jobs j JOIN files f ON f.job_id = j.id
               WHERE j.endpoint = ? AND j.locale = ? AND j.state = 'queued' AND j.token IS NULL AND j.attempts = 0
               AND f.state = 'active'"""
            + (" AND j.id IN (SELECT id FROM temp.run_scope)" if self._core.scoped else "")
            + " ORDER BY j.id, f.id",
            (endpoint, self._core.locale),
        )
        return [Adoptable(*r) for r in rows]

    def token_held(self, token: str) -> bool:
        """Whether some job already holds this token."""
        return bool(self._core.query("SELECT 1 FROM jobs WHERE token = ?", (token,)))

    def adopt(
        self,
        job_id: int,
        answer: dict[str, Any],
        token: str | None,
        settled_at: float | None,
        sidecars: list[tuple[int, bytes]],
    ) -> bool:
        """Settle a queued job with the caption its files' sidecars hold; no submission. False if the token is another job's.

        ``sidecars``: (file id, sidecar path) of the files whose sidecar holds it
        (they need no write); the job's other files get theirs written as usual.
        ``token`` None: a caption a similar photo lent (``link_lender`` then
        makes the job share the lender's job again); never for a job the user
        asked to be sent on its own (``retry --reused``).
        """
        flags, categories = answer.get("flags"), answer.get("categories")
        with self._core.transaction() as c:
            if (
                token is not None
                and c.execute("SELECT 1 FROM jobs WHERE token = ? AND id != ?", (token, job_id)).fetchone()
            ):
                return False
            n = c.execute(
                """UPDATE jobs SET state = 'completed', token = ?, status = ?, caption = ?, flags = ?, categories = ?,
                   settled_at = ? WHERE id = ? AND state = 'queued' AND token IS NULL AND (? OR no_reuse = 0)""",
                (
                    token,
                    answer.get("status") or "completed",
                    answer.get("name"),
                    json.dumps(list(flags)) if flags else None,
                    json.dumps(list(categories)) if categories else None,
                    settled_at if settled_at is not None else self._core.now(),
                    job_id,
                    token is not None,
                ),
            ).rowcount
            if not n:
                return False
            now = self._core.now()
            c.executemany(
                "UPDATE files SET written_job = ?, written_at = ?, sidecar = ?, sidecar_error = NULL WHERE id = ?",
                [(job_id, now, path, file_id) for file_id, path in sidecars],
            )
            return True

    def link_lender(self, job_id: int, lender: bytes) -> bool:
        """Make an adopted, lent caption's job share the job of the photo at path ``lender`` again; False while it has none."""
        directory, name = os.path.split(lender)
        with self._core.transaction() as c:
            row = c.execute(
                """SELECT d.id FROM jobs j JOIN files f ON f.dir = ? AND f.name = ? JOIN jobs d ON d.id = f.job_id
                   WHERE j.id = ? AND d.id != j.id AND d.endpoint = j.endpoint AND d.locale = j.locale AND d.similar_to IS NULL""",
                (directory, name, job_id),
            ).fetchone()
            return row is not None and bool(
                c.execute(
                    "UPDATE jobs SET similar_to = ? WHERE id = ? AND state = 'completed' AND token IS NULL AND similar_to IS NULL",
                    (row[0], job_id),
                ).rowcount
            )

    def forget(self, roots: list[bytes]) -> int:
        """Mark the sidecars of files under ``roots`` as not written, so the next write-back redoes them."""
        where, params = under_roots(roots)
        with self._core.transaction() as c:
            return c.execute(
                f"UPDATE files SET written_job = NULL WHERE written_job IS NOT NULL AND ({where})", params
            ).rowcount
