"""The ledger's SQL for similar photos: fingerprints, lenders, waiting jobs, and sending a copy on its own.

``Ledger.similar``; ``tagger.pipeline.similar`` holds the decisions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

from tagger.ledger.core import LedgerCore
from tagger.ledger.roots import under_roots
from tagger.ledger.states import Job, JobState

__all__ = ["SimilarQueries", "LENDER_FILE", "StoredPrint", "Candidate", "Waiters"]

# Jobs whose answer a similar photo may share: done, or on its way (queued ones only once fingerprinted).
_LENDER_STATES = ("completed", "queued", "submitting", "polling")
_ANSWER = "status, caption, reason, flags, categories"
# (dir, name) of a file of the job whose caption ``j`` shares (NULLs when it shares none), for the writers.
LENDER_FILE = """(SELECT d.dir FROM files d WHERE d.job_id = j.similar_to ORDER BY d.state != 'active', d.id LIMIT 1),
                 (SELECT d.name FROM files d WHERE d.job_id = j.similar_to ORDER BY d.state != 'active', d.id LIMIT 1)"""


class StoredPrint(NamedTuple):
    """A content's stored perceptual fingerprint."""

    aspect: float
    print: bytes


class Candidate(NamedTuple):
    """A job whose content's fingerprint is near (``SimilarQueries.candidates``)."""

    job_id: int
    state: str
    aspect: float
    print: bytes


class Waiters(NamedTuple):
    """What a settled lender's waiting jobs became (``SimilarQueries.settle_waiters``)."""

    shared: list[int]  # completed with its answer
    requeued: list[int]  # queued to be sent on their own


class SimilarQueries:
    """What reusing a similar photo's caption reads and writes (``Ledger.similar``), given the ledger's core."""

    def __init__(self, core: LedgerCore) -> None:
        self._core = core

    def save_fingerprint(self, content_hash: str, key: int, means: int, aspect: float, blob: bytes) -> None:
        """Remember the perceptual fingerprint of one content."""
        with self._core.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO fingerprints (content_hash, key, means, aspect, print) VALUES (?, ?, ?, ?, ?)",
                (content_hash, key, means, aspect, blob),
            )

    def fingerprint_of(self, content_hash: str) -> StoredPrint | None:
        """The fingerprint stored for a content, if any."""
        rows = self._core.query("SELECT aspect, print FROM fingerprints WHERE content_hash = ?", (content_hash,))
        return StoredPrint(rows[0][0], rows[0][1]) if rows else None

    def candidates(
        self,
        endpoint: str,
        keys: list[int],
        means: list[int],
        slack: int,
        aspect_low: float,
        aspect_high: float,
        *,
        exclude_job: int = 0,
        states: tuple[str, ...] = _LENDER_STATES,
    ) -> list[Candidate]:
        """Jobs at ``endpoint`` whose content's fingerprint has one of ``keys``, each packed mean within ``slack``
        of ``means`` and an aspect in range.

        Only jobs that can lend their
        answer (by default completed, or fingerprinted and not yet settled),
        never a job that itself shares another's answer.
        """
        marks = ",".join("?" * len(states))
        # The key index finds the bins; SQLite then drops rows whose region means are too far, in C.
        near = " AND ".join(f"abs(((p.means >> {56 - 8 * i}) & 255) - ?) <= ?" for i in range(len(means)))
        near_params = [v for m in means for v in (m, slack)]
        rows: list[Candidate] = []
        # The key index answers each probe; a few hundred at most, in chunks SQLite accepts.
        for start in range(0, len(keys), 250):
            chunk = keys[start : start + 250]
            rows += [
                Candidate(r[0], r[1], r[2], r[3])
                for r in self._core.query(
                    # CROSS JOIN: fingerprints first, by key; never a walk over the endpoint's jobs.
                    f"""SELECT j.id, j.state, p.aspect, p.print FROM fingerprints p
                        CROSS JOIN jobs j ON j.content_hash = p.content_hash AND j.endpoint = ? AND j.locale = ?
                        WHERE p.key IN ({",".join("?" * len(chunk))}) AND p.aspect BETWEEN ? AND ? AND {near}
                          AND j.similar_to IS NULL AND j.id != ? AND j.state IN ({marks})""",
                    (endpoint, self._core.locale, *chunk, aspect_low, aspect_high, *near_params, exclude_job, *states),
                )
            ]
        return rows

    def share_answer(self, job_id: int, lender_id: int) -> bool | None:
        """Settle a queued job with a completed lender's answer (True), make it wait for a lender in flight (False).

        None: the lender settled otherwise meanwhile and lends nothing.
        """
        with self._core.transaction() as c:
            lender = c.execute("SELECT state FROM jobs WHERE id = ?", (lender_id,)).fetchone()
            if lender is None or lender[0] not in _LENDER_STATES:
                return None
            if lender[0] == "completed":
                c.execute(
                    f"""UPDATE jobs SET ({_ANSWER}, state, similar_to, settled_at, last_error) =
                        (SELECT {_ANSWER}, 'completed', id, ?, NULL FROM jobs WHERE id = ?) WHERE id = ?""",
                    (self._core.now(), lender_id, job_id),
                )
                return True
            c.execute("UPDATE jobs SET state = 'waiting', similar_to = ? WHERE id = ?", (lender_id, job_id))
            return False

    def settle_waiters(self, lender_id: int) -> Waiters:
        """Jobs waiting for a lender that has settled: (completed with its answer, queued to be sent on their own).

        A lender that ended other than completed lends nothing: its waiters go
        back to the queue. Waiters of those waiters follow in the same way.
        """
        shared: list[int] = []
        requeued: list[int] = []
        if not self._core.query("SELECT 1 FROM jobs WHERE similar_to = ? AND state = 'waiting' LIMIT 1", (lender_id,)):
            return Waiters(shared, requeued)  # the common case, read from the partial index: no write transaction
        pending = [lender_id]
        with self._core.transaction() as c:
            while pending:
                lender = pending.pop()
                row = c.execute("SELECT state FROM jobs WHERE id = ?", (lender,)).fetchone()
                if row is None or row[0] in ("queued", "submitting", "polling", "waiting"):
                    continue
                waiters = [
                    r[0] for r in c.execute("SELECT id FROM jobs WHERE similar_to = ? AND state = 'waiting'", (lender,))
                ]
                if not waiters:
                    continue
                marks = ",".join("?" * len(waiters))
                if row[0] == "completed":
                    c.execute(
                        f"""UPDATE jobs SET ({_ANSWER}, state, settled_at) =
                            (SELECT {_ANSWER}, 'completed', ? FROM jobs WHERE id = ?) WHERE id IN ({marks})""",
                        (self._core.now(), lender, *waiters),
                    )
                    shared += waiters
                else:
                    c.execute(f"UPDATE jobs SET state = 'queued', similar_to = NULL WHERE id IN ({marks})", waiters)
                    requeued += waiters
                pending += waiters
        return Waiters(shared, requeued)

    def waiting_lenders(self, endpoint: str) -> list[int]:
        """Lenders of the endpoint's waiting jobs that are no longer in flight (a crash, or an earlier run's end)."""
        return [
            r[0]
            for r in self._core.query(
                """SELECT DISTINCT d.id FROM jobs w JOIN jobs d ON d.id = w.similar_to
                   WHERE w.endpoint = ? AND w.locale = ? AND w.state = 'waiting' AND d.state NOT IN ('queued', 'submitting', 'polling', 'waiting')""",
                (endpoint, self._core.locale),
            )
        ]

    def stop_waiting(self, endpoint: str) -> int:
        """Queue every waiting job of the endpoint to be sent on its own (reuse turned off)."""
        with self._core.transaction() as c:
            return c.execute(
                "UPDATE jobs SET state = 'queued', similar_to = NULL WHERE endpoint = ? AND state = 'waiting'",
                (endpoint,),
            ).rowcount

    def jobs_by_id(self, ids: Iterable[int]) -> list[Job]:
        """Job rows by id, in id order."""
        ids = sorted(set(ids))
        if not ids:
            return []
        rows = self._core.query(
            f"""SELECT id, content_hash, state, source, token, reposts, attempts, submitted_at FROM jobs
                WHERE id IN ({",".join("?" * len(ids))}) ORDER BY id""",
            ids,
        )
        return [Job(r[0], r[1], JobState(r[2]), r[3], r[4], r[5], r[6], r[7]) for r in rows]

    def no_reuse(self, job_id: int) -> bool:
        """Whether the user asked for this job to be sent on its own."""
        rows = self._core.query("SELECT no_reuse FROM jobs WHERE id = ?", (job_id,))
        return bool(rows and rows[0][0])

    def sent_alone(self, endpoint: str, content_hash: str) -> bool:
        """Whether the user asked for this content's job at ``endpoint`` to be sent on its own."""
        rows = self._core.query(
            "SELECT no_reuse FROM jobs WHERE content_hash = ? AND endpoint = ? AND locale = ?",
            (content_hash, endpoint, self._core.locale),
        )
        return bool(rows and rows[0][0])

    def retry_reused(self, endpoint: str, paths: list[bytes]) -> int:
        """Queue again, to be sent on their own, the jobs that share a similar photo's caption.

        ``paths`` (files or folders; all when empty) choose which; returns jobs queued.
        """
        where, params = "1", []
        if paths:
            files = [p for p in paths if not os.path.isdir(p)]
            folders = [p for p in paths if os.path.isdir(p)]
            clauses = []
            if files:
                clauses.append(f"(f.dir, f.name) IN (VALUES {','.join(['(?, ?)'] * len(files))})")
                params += [part for p in files for part in os.path.split(os.path.abspath(p))]
            if folders:
                sub, sub_params = under_roots([os.path.abspath(p) for p in folders])
                clauses.append(f"({sub})")  # only files has a dir column
                params += sub_params
            where = " OR ".join(clauses)
        with self._core.transaction() as c:
            ids = [
                r[0]
                for r in c.execute(
                    f"""SELECT DISTINCT j.id FROM jobs j JOIN files f ON f.job_id = j.id
                        WHERE j.endpoint = ? AND j.locale = ? AND j.similar_to IS NOT NULL AND j.state = 'completed' AND ({where})""",
                    (endpoint, self._core.locale, *params),
                )
            ]
            if not ids:
                return 0
            marks = ",".join("?" * len(ids))
            c.execute(
                f"""UPDATE jobs SET state = 'queued', similar_to = NULL, no_reuse = 1, token = NULL, status = NULL,
                    caption = NULL, reason = NULL, flags = NULL, categories = NULL, settled_at = NULL WHERE id IN ({marks})""",
                ids,
            )
            c.execute(f"UPDATE files SET written_job = NULL WHERE job_id IN ({marks})", ids)
            return len(ids)
