"""The ledger read out: every file with its job for the exports, and the counts ``tagger status`` shows.

``Ledger.readout``; ``tagger.exports`` and the pipeline's reports turn these rows into records and words.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any, NamedTuple

from tagger.ledger.core import LedgerCore
from tagger.ledger.roots import under_roots
from tagger.ledger.similarity import LENDER_FILE
from tagger.ledger.states import FileState, JobState, file_status

__all__ = ["ReadoutQueries", "StatusCount"]


class StatusCount(NamedTuple):
    """How many files share one (file state, job state, reason, last error)."""

    file_state: str
    job_state: str | None  # 'unwritten': completed, but the sidecar could not be written
    reason: str | None
    last_error: str | None
    files: int


class ReadoutQueries:
    """The exports' and ``status``'s reads (``Ledger.readout``), given the ledger's core."""

    def __init__(self, core: LedgerCore) -> None:
        self._core = core

    def _job_in_locale(self, column: str) -> tuple[str, tuple[Any, ...]]:
        """The join target for exports: the job of ``column``'s content and endpoint in this ledger's locale."""
        if not self._core.query("SELECT 1 FROM jobs WHERE locale != ? LIMIT 1", (self._core.locale,)):
            return column, ()  # one locale only (the usual ledger): the file's own job, no lookup
        # The job's content, not the file's: a RAW file shares its JPEG's job.
        return (
            f"""(SELECT o.id FROM jobs cur JOIN jobs o ON o.content_hash = cur.content_hash AND o.endpoint = cur.endpoint
                 AND o.locale = ? WHERE cur.id = {column})""",
            (self._core.locale,),
        )

    def file_rows(self, *, include_missing: bool = False, endpoint: str | None = None) -> Iterator[sqlite3.Row]:
        """Every file with its job in this ledger's locale, for exports, streamed in path order.

        One row per file: a DAM imports one row per asset. A file not yet
        captioned in this locale has no job here (it shows as pending).
        """
        file_job, params = self._job_in_locale("f.job_id")
        remote_job, remote_params = self._job_in_locale("r.job_id")
        sql = f"""SELECT f.dir, f.name, f.root, f.size, f.mtime_ns, f.content_hash, f.state, f.reason,
                        j.state, j.token, j.endpoint, j.caption, j.reason, j.flags, j.categories,
                        j.submitted_at, j.settled_at, j.last_error, j.keywords, {LENDER_FILE}
                 FROM files f LEFT JOIN jobs j ON j.id = {file_job}"""
        if not include_missing:
            sql += " WHERE f.state != 'missing'"
        sql += " ORDER BY f.dir, f.name"
        remote = f"""SELECT NULL, r.url, NULL, NULL, NULL, NULL, 'active', NULL,
                           j.state, j.token, j.endpoint, j.caption, j.reason, j.flags, j.categories,
                           j.submitted_at, j.settled_at, j.last_error, j.keywords, {LENDER_FILE}
                    FROM remote r LEFT JOIN jobs j ON j.id = {remote_job} ORDER BY r.url"""
        # A separate connection streams without holding the writer lock.
        reader = sqlite3.connect(self._core.path, timeout=30)
        try:
            yield from reader.execute(sql, params)
            yield from reader.execute(remote, remote_params)
        finally:
            reader.close()

    def summary(self, roots: list[bytes] | None = None, *, remote: bool = True) -> dict[str, Any]:
        """Counts by status and by reason (of files under ``roots``, or all; and remote images)."""
        counts = {
            "total": 0,
            "completed": 0,
            "skipped": 0,
            "timeout": 0,
            "not found": 0,
            "failed": 0,
            "pending": 0,
            "missing": 0,
            "unwritten": 0,
        }
        reasons: dict[str, int] = {}
        # A completed file whose sidecar could not be written counts as "unwritten" (tried again every run).
        rows = self._file_statuses(roots)
        if remote:
            rows += [
                StatusCount(*r)
                for r in self._core.query(
                    """SELECT 'active', j.state, j.reason, j.last_error, count(*) FROM remote r
                       LEFT JOIN jobs j ON j.id = r.job_id GROUP BY 2, 3, 4"""
                )
            ]
        held = 0
        for fstate, jstate, reason, last_error, n in rows:
            status = (
                "unwritten"
                if jstate == "unwritten" and fstate == FileState.ACTIVE.value
                else file_status(fstate, "completed" if jstate == "unwritten" else jstate)
            )
            if status == "missing":
                counts["missing"] += n
                continue
            counts["total"] += n
            counts[status] += n
            if status == "pending" and jstate == JobState.HELD.value:
                held += n
            if status in ("skipped", "failed", "timeout", "not found", "unwritten") and reason:
                key = f"{status}: {reason}"
                reasons[key] = reasons.get(key, 0) + n
            elif status == "pending" and last_error:
                # Why a file is still waiting (an outage, a lost answer): it is sent again, or held.
                key = f"{'held' if jstate == JobState.HELD.value else 'pending'}: {last_error}"
                reasons[key] = reasons.get(key, 0) + n
        runs = self._core.query(
            "SELECT min(started_at), max(coalesce(finished_at, started_at)), sum(submitted) FROM runs"
        )[0]
        # Read from the jobs_duplicates partial index (m014): usually empty.
        duplicates = self._core.query(
            "SELECT coalesce(sum(possible_duplicates), 0) FROM jobs INDEXED BY jobs_duplicates WHERE possible_duplicates != 0"
        )[0][0]
        return {
            **counts,
            "held": held,
            "reasons": reasons,
            "first_run": runs[0],
            "last_run": runs[1],
            "credits_used": runs[2] or 0,
            "possible_duplicates": duplicates,
        }

    def _file_statuses(self, roots: list[bytes] | None) -> list[StatusCount]:
        """(file state, job state, reason, job's last error, count) of the files under ``roots`` (or all), grouped.

        Every run ends with this (the exit status needs it), so it avoids the
        per-file join and sort a plain GROUP BY costs, and reads no file's
        row when all is done: the files are counted in the (dir, name) index;
        those missing, failed or unlinked are read from the files_attention
        partial index; the files whose job is not completed are found from
        the jobs side (the jobs_state and files_job indexes), and the rest of
        the active, linked files are the completed ones. Foreign keys are on,
        so a linked file always has its job.
        """
        where, params = under_roots(roots) if roots else ("1", [])
        # The total from the (dir, name) index alone; the files needing attention from the small
        # files_attention partial index (m014), so the files' own rows are not read.
        ((total,),) = self._core.query(f"SELECT count(*) FROM files WHERE {where}", params)
        ((missing, unlinked, failed),) = self._core.query(
            f"""SELECT count(*) FILTER (WHERE state = 'missing'),
                       count(*) FILTER (WHERE state = 'active' AND job_id IS NULL),
                       json_group_array(id) FILTER (WHERE state = 'failed')
                FROM files INDEXED BY files_attention WHERE (state != 'active' OR job_id IS NULL) AND ({where})""",
            params,
        )
        rows = [StatusCount("missing", None, None, None, missing), StatusCount("active", None, None, None, unlinked)]
        if json.loads(failed):
            rows += [
                StatusCount(*r)
                for r in self._core.query(
                    """SELECT 'failed', j.state, coalesce(f.reason, j.reason), j.last_error, count(*) FROM files f
                   LEFT JOIN jobs j ON j.id = f.job_id WHERE f.id IN (SELECT value FROM json_each(?)) GROUP BY 2, 3, 4""",
                    (failed,),
                )
            ]
        unsettled = [state.value for state in JobState if state is not JobState.COMPLETED]
        rows += [
            StatusCount(*r)
            for r in self._core.query(
                f"""SELECT 'active', j.state, coalesce(f.reason, j.reason), j.last_error, count(*) FROM jobs j
                CROSS JOIN files f ON f.job_id = j.id
                WHERE j.state IN ({",".join("?" * len(unsettled))}) AND f.state = 'active' AND ({where}) GROUP BY 2, 3, 4""",
                [*unsettled, *params],
            )
        ]
        # Completed, but the sidecar could not be written: read from the small files_unwritten partial index
        # (``+f.dir``: the roots filter the rows, they do not drive the query).
        unwritten_where, unwritten_params = under_roots(roots, "+f.dir") if roots else ("1", [])
        rows += [
            StatusCount(*r)
            for r in self._core.query(
                f"""SELECT 'active', 'unwritten', f.sidecar_error, NULL, count(*) FROM files f INDEXED BY files_unwritten
                CROSS JOIN jobs j ON j.id = f.job_id
                WHERE f.state = 'active' AND f.written_job IS NOT f.job_id AND f.sidecar_error IS NOT NULL
                AND j.state = 'completed' AND ({unwritten_where}) GROUP BY 3""",
                unwritten_params,
            )
        ]
        # A completed file's reason and last error say nothing (only other statuses list them).
        rows.append(StatusCount("active", JobState.COMPLETED.value, None, None, total - sum(r.files for r in rows)))
        return [r for r in rows if r.files]
