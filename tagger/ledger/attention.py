"""What a user should hear about between runs: files that failed, sidecars left behind, failures at other endpoints.

Statements only (the ledger package owns every SQL statement); the pipeline
and the CLI decide what to say. Each reads from a small index: the
files_attention partial index for failed files, jobs_state for failed jobs,
so a nightly run over a large archive pays a few index probes for them.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from tagger.ledger.roots import under_roots
from tagger.ledger.store import Ledger

#: A failed job whose content never left: found unreadable or not an image while preparing (a 422 refusal too:
#: the service charges nothing for it either).
_UNSENT = "(j.submitted_at IS NULL AND j.token IS NULL AND j.lost_answer = 0)"

__all__ = ["Failing", "failing_files", "orphaned_sidecars", "failed_elsewhere", "failed_unsent", "why_sent"]


class Failing(NamedTuple):
    """A file that is failed (unreadable, or its job failed for good), as the ledger has it."""

    id: int
    dir: bytes
    name: bytes
    size: int
    mtime_ns: int
    reason: str | None
    stage: str  # "read" (the file could not be read), "prepare" (not an image: never sent), "service" (refused)

    @property
    def sent(self) -> bool:
        """Whether its content reached the service (and may have cost a credit)."""
        return self.stage == "service"


def failing_files(ledger: Ledger, roots: list[bytes] | None = None) -> dict[int, Failing]:
    """The failed files under ``roots`` (or all), by file id."""
    where, params = under_roots(roots) if roots else ("1", [])
    rows = ledger.query(
        f"""SELECT id, dir, name, size, mtime_ns, reason, 'read' FROM files INDEXED BY files_attention
            WHERE (state != 'active' OR job_id IS NULL) AND state = 'failed' AND ({where})""",
        params,
    )
    where_f, params_f = under_roots(roots, "f.dir") if roots else ("1", [])
    rows += ledger.query(
        f"""SELECT f.id, f.dir, f.name, f.size, f.mtime_ns, coalesce(f.reason, j.reason),
                   CASE WHEN {_UNSENT} THEN 'prepare' ELSE 'service' END
            FROM jobs j CROSS JOIN files f ON f.job_id = j.id
            WHERE j.state = 'failed' AND f.state = 'active' AND ({where_f})""",
        params_f,
    )
    return {r[0]: Failing(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}


def orphaned_sidecars(ledger: Ledger, roots: list[bytes] | None = None) -> list[bytes]:
    """Sidecars tagger wrote for files now gone from disk (moved, renamed, deleted), no present file's sidecar too.

    Candidates only: the caller checks each still exists and what it holds.
    """
    where, params = under_roots(roots) if roots else ("1", [])
    rows = ledger.query(
        f"""SELECT DISTINCT sidecar FROM files INDEXED BY files_attention
            WHERE (state != 'active' OR job_id IS NULL) AND state = 'missing' AND sidecar IS NOT NULL AND ({where})
            AND sidecar NOT IN (SELECT sidecar FROM files WHERE state != 'missing' AND sidecar IS NOT NULL)""",
        params,
    )
    return sorted(r[0] for r in rows)


def failed_elsewhere(ledger: Ledger, endpoint: str, roots: list[bytes] | None = None) -> dict[str, int]:
    """Failed jobs of this locale at endpoints other than ``endpoint`` (of files under ``roots``): endpoint -> count."""
    where, params = under_roots(roots, "f.dir") if roots else ("1", [])
    rows = ledger.query(
        f"""SELECT j.endpoint, count(DISTINCT j.id) FROM jobs j JOIN files f ON f.job_id = j.id
            WHERE j.state = 'failed' AND j.endpoint != ? AND j.locale = ? AND f.state = 'active' AND ({where})
            GROUP BY j.endpoint""",
        [endpoint, ledger.locale, *params],
    )
    return {r[0]: r[1] for r in rows}


def failed_unsent(ledger: Ledger, endpoint: str, roots: list[bytes] | None = None) -> tuple[int, int]:
    """Failed jobs at ``endpoint`` (of files under ``roots``): (how many the service saw, how many failed before sending)."""
    where, params = under_roots(roots, "f.dir") if roots else ("1", [])
    ((sent, unsent),) = ledger.query(
        f"""SELECT count(*) FILTER (WHERE NOT {_UNSENT}), count(*) FILTER (WHERE {_UNSENT})
            FROM jobs j WHERE j.state = 'failed' AND j.endpoint = ? AND j.locale = ?
            AND (? OR EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id AND f.state = 'active' AND ({where})))""",
        [endpoint, ledger.locale, roots is None, *params],
    )
    return sent, unsent


def why_sent(ledger: Ledger, endpoint: str, hashes: list[str]) -> dict[str, str]:
    """Why each content would cost a credit at ``endpoint``: content hash -> one of the reasons below.

    "retry" (queued again by `tagger retry`, or sent before and lost),
    "queued" (an earlier run queued it and stopped before sending it),
    "endpoint" (captioned at another endpoint, not this one), "locale"
    (captioned here in another locale), "new" (the ledger has never seen it
    captioned: a new picture or changed pixels).
    """
    if not hashes:
        return {}
    rows = ledger.query(
        """SELECT h.value,
                  (SELECT CASE WHEN j.submitted_at IS NOT NULL OR j.last_error IS NOT NULL THEN 'retry' ELSE 'queued' END
                     FROM jobs j WHERE j.content_hash = h.value AND j.endpoint = ? AND j.locale = ?),
                  EXISTS (SELECT 1 FROM jobs j WHERE j.content_hash = h.value AND j.endpoint != ? AND j.locale = ?),
                  EXISTS (SELECT 1 FROM jobs j WHERE j.content_hash = h.value AND j.endpoint = ? AND j.locale != ?)
           FROM json_each(?) h""",
        [endpoint, ledger.locale, endpoint, ledger.locale, endpoint, ledger.locale, json.dumps(hashes)],
    )
    return {r[0]: r[1] or ("endpoint" if r[2] else "locale" if r[3] else "new") for r in rows}
