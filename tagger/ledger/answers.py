"""The ledger's SQL for the shared store: reading out final answers and tokens, remembering what was reported.

Functions over a ``Ledger`` (read-only); ``tagger.pipeline.sharing`` holds the decisions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tagger.ledger.store import Ledger

__all__ = ["answers_of", "settled_since", "tokens_out", "published", "record_published"]

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


def published(ledger: Ledger, store: str) -> dict[str, str]:
    """Path -> digest of what this ledger last reported of each file to the shared store ``store``."""
    rows = ledger.query("SELECT path, digest FROM shared_published WHERE store = ?", (store,))
    return {r[0]: r[1] for r in rows}


def record_published(ledger: Ledger, store: str, reported: list[tuple[str, str]], withdrawn: list[str]) -> None:
    """Remember what was reported (path, digest) and withdrawn; what other stores were told is forgotten."""
    with ledger.transaction() as c:
        c.execute("DELETE FROM shared_published WHERE store <> ?", (store,))
        c.executemany("DELETE FROM shared_published WHERE store = ? AND path = ?", [(store, p) for p in withdrawn])
        c.executemany(
            "INSERT OR REPLACE INTO shared_published (store, path, digest) VALUES (?, ?, ?)",
            [(store, p, d) for p, d in reported],
        )
