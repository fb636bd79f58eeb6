"""The ledger's SQL for the shared store: reading out final answers to publish them.

Functions over a ``Ledger`` (read-only); ``tagger.pipeline.sharing`` holds the decisions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tagger.ledger.store import Ledger

__all__ = ["answers_of", "settled_since", "tokens_out"]

_COLUMNS = "content_hash, state, status, caption, reason, flags, categories"


Answer = tuple[str, str, str | None, str | None, str | None, list[Any] | None, list[Any] | None]


def _row(r: tuple[Any, ...]) -> Answer:
    flags = json.loads(r[5]) if r[5] else None
    categories = json.loads(r[6]) if r[6] else None
    return (r[0], r[1], r[2], r[3], r[4], flags, categories)


def answers_of(ledger: Ledger, job_ids: Iterable[int]) -> list[Answer]:
    """(content hash, state, status, caption, reason, flags, categories) of these jobs, settled ones only."""
    ids = sorted(set(job_ids))
    if not ids:
        return []
    rows = ledger.query(
        f"""SELECT {_COLUMNS} FROM jobs WHERE id IN (SELECT value FROM json_each(?))
            AND state NOT IN ('queued', 'submitting', 'polling', 'held', 'waiting')""",
        (json.dumps(ids),),
    )
    return [_row(tuple(r)) for r in rows]


def settled_since(ledger: Ledger, endpoint: str, since: float) -> list[Answer]:
    """The answers of this endpoint and the ledger's locale settled at or after ``since`` (the ledger's clock)."""
    rows = ledger.query(
        f"""SELECT {_COLUMNS} FROM jobs WHERE endpoint = ? AND locale = ? AND settled_at >= ?
            AND state NOT IN ('queued', 'submitting', 'polling', 'held', 'waiting')""",
        (endpoint, ledger.locale, since),
    )
    return [_row(tuple(r)) for r in rows]


def tokens_out(ledger: Ledger, endpoint: str) -> list[tuple[str, str]]:
    """(content hash, token) of this endpoint's and locale's jobs the service answered but has not settled yet."""
    rows = ledger.query(
        "SELECT content_hash, token FROM jobs WHERE endpoint = ? AND locale = ? AND state = 'polling' AND token IS NOT NULL",
        (endpoint, ledger.locale),
    )
    return [(r[0], r[1]) for r in rows]
