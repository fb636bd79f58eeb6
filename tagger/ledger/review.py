"""The ledger's SQL for review: captions held for a person, their decisions, and what applying them wrote.

``Ledger.reviews``; ``tagger.review`` holds the decisions'
logic and ``tagger.sidecars.writeback`` asks here which captions a person
has let through. A review row counts only while its file still has the job
whose caption was held (``r.job_id = f.job_id``): a changed file gets another
job, and is held again.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from tagger.ledger.core import LedgerCore
from tagger.ledger.roots import under_roots
from tagger.ledger.similarity import LENDER_FILE

__all__ = [
    "ReviewQueries",
    "ReviewFilter",
    "ReviewRow",
    "Override",
    "DECISIONS",
    "AWAITING",
    "APPROVED",
    "EDITED",
    "REJECTED",
]

AWAITING, APPROVED, EDITED, REJECTED = "awaiting", "approved", "edited", "rejected"
#: Every decision a review row may hold.
DECISIONS = (AWAITING, APPROVED, EDITED, REJECTED)

# A held caption still current: its file is on disk with the job whose caption was held, and that job has its answer.
_CURRENT = """FROM reviews r JOIN files f ON f.id = r.file_id AND f.job_id = r.job_id JOIN jobs j ON j.id = r.job_id
              WHERE f.state = 'active' AND j.state = 'completed'"""
_COPIES = "(SELECT count(*) FROM files c WHERE c.job_id = r.job_id AND c.state = 'active')"


class ReviewRow(NamedTuple):
    """A file's review row (``ReviewQueries.of_files``)."""

    job_id: int  # the job whose caption was held
    decision: str
    caption: str | None  # the person's
    keywords: str | None  # the person's (JSON)
    keyword_paths: str | None


class Override(NamedTuple):
    """What a person decided for a photo, as the exports apply it (``ReviewQueries.overrides``)."""

    decision: str
    caption: str | None
    keywords: str | None


class HeldPhoto(NamedTuple):
    """One held photo (``ReviewQueries.photo``)."""

    dir: bytes
    name: bytes
    root: bytes
    content_hash: str | None
    decision: str
    copies: str | None  # JSON: the hex of each other active copy's path


@dataclass(frozen=True)
class ReviewFilter:
    """Which held photos a listing shows: under ``folder``, with ``decision``, holding ``text``, reused or not."""

    folder: bytes | None = None
    decision: str | None = None
    text: str = ""
    reused: bool | None = None
    roots: tuple[bytes, ...] | None = None
    file_id: int | None = None

    def sql(self) -> tuple[str, list[Any]]:
        """The condition (added to ``_CURRENT``) and its parameters."""
        clauses: list[str] = []
        params: list[Any] = []
        if self.roots is not None:
            where, p = _paths_clause(list(self.roots))
            clauses.append(where)
            params += p
        if self.file_id is not None:
            clauses.append("r.file_id = ?")
            params.append(self.file_id)
        if self.folder is not None:
            clauses.append("f.dir = ?")
            params.append(self.folder)
        if self.decision:
            clauses.append("r.decision = ?")
            params.append(self.decision)
        if self.text:
            # Case-insensitive in the caption shown, the keywords and the path (paths are bytes: compared as text).
            clauses.append(
                """instr(lower(coalesce(r.caption, j.caption, '') || ' ' || coalesce(r.keywords, j.keywords, '')
                   || ' ' || CAST(f.dir || X'2F' || f.name AS TEXT)), lower(?))"""
            )
            params.append(self.text)
        if self.reused is not None:
            clauses.append(f"{'' if self.reused else 'NOT '}(j.similar_to IS NOT NULL OR {_COPIES} > 1)")
        return (" AND " + " AND ".join(clauses)) if clauses else "", params


def _paths_clause(paths: list[bytes]) -> tuple[str, list[Any]]:
    """Files under any of ``paths`` taken as folders, or that are one of them (a path naming a photo)."""
    where, params = under_roots(paths, "f.dir")
    for path in paths:
        directory, name = os.path.split(path.rstrip(b"/"))
        where += " OR (f.dir = ? AND f.name = ?)"
        params += [directory, name]
    return f"({where})", params


class ReviewQueries:
    """What holding captions for review, deciding on them and applying them reads and writes (``Ledger.reviews``), given the ledger's core."""

    def __init__(self, core: LedgerCore) -> None:
        self._core = core

    # -- holding, and the gate write-back asks ------------------------------------

    def set_awaiting(self, pairs: Iterable[tuple[int, int]]) -> int:
        """Record (file id, job id) pairs as awaiting review; a row of another (older) job starts over. Returns rows held."""
        with self._core.transaction() as c:
            return c.executemany(
                """INSERT INTO reviews (file_id, job_id, decision, held_at) VALUES (?, ?, 'awaiting', ?)
                   ON CONFLICT (file_id) DO UPDATE SET job_id = excluded.job_id, decision = 'awaiting', caption = NULL,
                     keywords = NULL, keyword_paths = NULL, held_at = excluded.held_at, decided_at = NULL,
                     applied_at = NULL
                   WHERE reviews.job_id IS NOT excluded.job_id""",
                [(f, j, self._core.now()) for f, j in pairs],
            ).rowcount

    def of_files(self, file_ids: Iterable[int]) -> dict[int, ReviewRow]:
        """These files' review rows, by file id."""
        ids = json.dumps(list(file_ids))
        return {
            r[0]: ReviewRow(r[1], r[2], r[3], r[4], r[5])
            for r in self._core.query(
                """SELECT file_id, job_id, decision, caption, keywords, keyword_paths FROM reviews
                   WHERE file_id IN (SELECT value FROM json_each(?))""",
                (ids,),
            )
        }

    def mark_applied(self, file_ids: Iterable[int]) -> None:
        """Record that these files' decided captions are now in their sidecars."""
        with self._core.transaction() as c:
            c.executemany(
                "UPDATE reviews SET applied_at = ? WHERE file_id = ?", [(self._core.now(), f) for f in file_ids]
            )

    def overrides(self) -> dict[tuple[bytes, bytes], Override]:
        """(dir, name) -> what a person decided, of every current review row, for the exports."""
        return {
            (r[0], r[1]): Override(r[2], r[3], r[4])
            for r in self._core.query(f"SELECT f.dir, f.name, r.decision, r.caption, r.keywords {_CURRENT}")
        }

    # -- reading for the page and the spreadsheet -----------------------------------

    def page(self, where: ReviewFilter, offset: int = 0, limit: int = 100) -> list[sqlite3.Row]:
        """One page of held photos, in path order.

        Each row: file id, dir, name, decision, machine caption, machine keywords (JSON), person's caption,
        person's keywords (JSON), content hash, copies (files sharing the job), and the dir and name of a file
        of the similar photo whose caption it shares (or NULLs).
        """
        cond, params = where.sql()
        return self._core.query(
            f"""SELECT r.file_id, f.dir, f.name, r.decision, j.caption, j.keywords, r.caption, r.keywords,
                       f.content_hash, {_COPIES}, {LENDER_FILE} {_CURRENT} {cond}
                ORDER BY f.dir, f.name LIMIT ? OFFSET ?""",
            (*params, limit, offset),
        )

    def count(self, where: ReviewFilter) -> dict[str, int]:
        """How many held photos ``where`` selects, by decision."""
        cond, params = where.sql()
        counts = dict.fromkeys(DECISIONS, 0)
        for decision, n in self._core.query(f"SELECT r.decision, count(*) {_CURRENT} {cond} GROUP BY 1", params):
            counts[decision] = n
        return counts

    def folders(self) -> list[bytes]:
        """The folders that hold photos held for review."""
        return [r[0] for r in self._core.query(f"SELECT DISTINCT f.dir {_CURRENT} ORDER BY 1")]

    def photo(self, file_id: int) -> HeldPhoto | None:
        """One held photo, with its copies' paths."""
        rows = self._core.query(
            f"""SELECT f.dir, f.name, f.root, f.content_hash, r.decision,
                       (SELECT json_group_array(hex(c.dir || X'2F' || c.name)) FROM files c
                        WHERE c.job_id = r.job_id AND c.state = 'active' AND c.id != f.id)
                {_CURRENT} AND r.file_id = ?""",
            (file_id,),
        )
        return HeldPhoto(*rows[0]) if rows else None

    def ids(self, where: ReviewFilter) -> list[int]:
        """The file ids ``where`` selects."""
        cond, params = where.sql()
        return [r[0] for r in self._core.query(f"SELECT r.file_id {_CURRENT} {cond}", params)]

    # -- deciding -----------------------------------------------------------------

    def decide(
        self,
        file_ids: Iterable[int],
        decision: str,
        *,
        caption: str | None = None,
        keywords: str | None = None,
        keyword_paths: str | None = None,
        only_awaiting: bool = False,
    ) -> int:
        """Record one decision for these held files, committed at once; returns rows changed.

        A decision that changes what a file's sidecar should hold clears its
        written mark, so the next apply writes it again.
        """
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        ids = list(file_ids)
        if decision != EDITED:
            caption = keywords = keyword_paths = None
        with self._core.transaction() as c:
            n = c.executemany(
                f"""UPDATE reviews SET decision = ?, caption = ?, keywords = ?, keyword_paths = ?, decided_at = ?,
                    applied_at = NULL WHERE file_id = ?{" AND decision = 'awaiting'" if only_awaiting else ""}
                    AND (decision IS NOT ? OR caption IS NOT ? OR keywords IS NOT ?)""",
                [
                    (decision, caption, keywords, keyword_paths, self._core.now(), f, decision, caption, keywords)
                    for f in ids
                ],
            ).rowcount
            c.executemany(
                "UPDATE files SET written_job = NULL WHERE id = ? AND written_job IS NOT NULL",
                [(f,) for f in ids],
            )
            return n

    def decide_all(self, changes: list[tuple[int, str, str | None, str | None, str | None]]) -> int:
        """Record many decisions in one transaction: (file id, decision, caption, keywords, paths). All or nothing."""
        for _, decision, *_rest in changes:
            if decision not in DECISIONS:
                raise ValueError(f"unknown decision {decision!r}")
        with self._core.transaction() as c:
            n = c.executemany(
                """UPDATE reviews SET decision = ?, caption = ?, keywords = ?, keyword_paths = ?, decided_at = ?,
                   applied_at = NULL WHERE file_id = ?""",
                [(d, cap, kw, paths, self._core.now(), f) for f, d, cap, kw, paths in changes],
            ).rowcount
            c.executemany(
                "UPDATE files SET written_job = NULL WHERE id = ? AND written_job IS NOT NULL",
                [(f,) for f, *_rest in changes],
            )
            return n

    # -- the spreadsheet ------------------------------------------------------------

    def sheet(self, roots: list[bytes] | None = None, *, awaiting_only: bool = True) -> list[sqlite3.Row]:
        """(file id, dir, name, decision, machine caption, machine keywords, person's caption, person's keywords)."""
        where = ReviewFilter(decision=AWAITING if awaiting_only else None, roots=tuple(roots) if roots else None)
        cond, params = where.sql()
        return self._core.query(
            f"""SELECT r.file_id, f.dir, f.name, r.decision, j.caption, j.keywords, r.caption, r.keywords
                {_CURRENT} {cond} ORDER BY f.dir, f.name""",
            params,
        )

    # -- applying and sending again ---------------------------------------------------

    def decided_unwritten(self, roots: list[bytes] | None = None) -> list[int]:
        """File ids of approved or edited photos (under ``roots``) whose sidecar does not hold their caption yet."""
        where = ReviewFilter(roots=tuple(roots) if roots else None)
        cond, params = where.sql()
        return [
            r[0]
            for r in self._core.query(
                f"""SELECT r.file_id {_CURRENT} {cond} AND r.decision IN ('approved', 'edited')
                    AND f.written_job IS NOT f.job_id""",
                params,
            )
        ]

    def retry_rejected(self, roots: list[bytes] | None = None) -> int:
        """Queue the jobs of rejected photos (under ``roots``) to be sent again (a credit each); returns jobs queued.

        Their review rows go: the new caption is held again by a run with hold on.
        """
        where = ReviewFilter(decision=REJECTED, roots=tuple(roots) if roots else None)
        cond, params = where.sql()
        with self._core.transaction() as c:
            jobs = [r[0] for r in c.execute(f"SELECT DISTINCT r.job_id {_CURRENT} {cond}", params)]
            c.executemany(
                """UPDATE jobs SET state = 'queued', token = NULL, status = NULL, caption = NULL, reason = NULL,
                   flags = NULL, categories = NULL, reposts = 0, settled_at = NULL, keywords = NULL, keyword_paths = NULL,
                   unmapped = NULL, keyword_rules = NULL, no_reuse = 1, similar_to = NULL WHERE id = ?""",
                [(j,) for j in jobs],
            )
            c.executemany("UPDATE files SET written_job = NULL WHERE job_id = ?", [(j,) for j in jobs])
            c.executemany("DELETE FROM reviews WHERE job_id = ?", [(j,) for j in jobs])
            return len(jobs)
