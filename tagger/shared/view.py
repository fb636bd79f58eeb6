"""One view of the organisation: what every machine reported, for ``tagger status --shared`` and ``export --shared``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from tagger.shared.base import SharedError, redact, scrub

__all__ = ["SharedRow", "shared_rows", "shared_summary", "write_shared_csv", "COLUMNS"]


@dataclass(frozen=True)
class SharedRow:
    """One file as one machine reported it."""

    machine: str
    path: str
    status: str
    caption: str | None
    keywords: tuple[str, ...]
    reported_at: datetime
    content_hash: str | None


def _connect(url: str):  # -> psycopg.Connection
    from tagger.shared.open import connect

    try:
        import psycopg
    except ImportError:
        raise SharedError("psycopg is not installed: pip install 'tagger[shared]'") from None
    try:
        return connect(url)
    except (psycopg.Error, OSError) as exc:
        raise SharedError(f"the shared store {redact(url)} cannot be read: {scrub(str(exc).strip(), url)}") from None


def _has_schema(conn) -> bool:
    return conn.execute("SELECT to_regclass('tagger_files') IS NOT NULL").fetchone()[0]


def shared_rows(url: str) -> Iterator[SharedRow]:
    """Every file every machine reported, by machine and path."""
    with _connect(url) as conn:
        if not _has_schema(conn):
            return
        with conn.transaction():  # a server-side cursor lives in a transaction
            cur = conn.cursor(name="tagger_export")  # streamed, not read whole
            cur.execute(
                """SELECT machine, path, status, caption, keywords, reported_at, content_hash
                   FROM tagger_files ORDER BY machine, path"""
            )
            for machine, path, status, caption, keywords, when, digest in cur:
                yield SharedRow(machine, path, status, caption, tuple(keywords or ()), when, digest)


def shared_summary(url: str) -> dict:
    """Counts of the organisation: files by machine and status, distinct contents answered, claims in flight."""
    with _connect(url) as conn:
        if not _has_schema(conn):
            return {"machines": {}, "contents": {}, "in_flight": 0, "files": 0}
        machines: dict[str, dict[str, int]] = {}
        files = 0
        for machine, status, n in conn.execute(
            "SELECT machine, status, count(*) FROM tagger_files GROUP BY 1, 2 ORDER BY 1, 2"
        ):
            machines.setdefault(machine, {})[status] = n
            files += n
        contents = dict(
            conn.execute("SELECT job_state, count(*) FROM tagger_contents WHERE state = 'settled' GROUP BY 1")
        )
        in_flight = conn.execute(
            "SELECT count(*) FROM tagger_contents WHERE state <> 'settled' AND lease_until > now()"
        ).fetchone()[0]
    return {"machines": machines, "contents": contents, "in_flight": in_flight, "files": files}


#: The columns of ``tagger export --shared``.
COLUMNS = ["path", "machine", "status", "caption", "keywords", "reported_at", "content_hash"]


def write_shared_csv(url: str, dest: str) -> int:
    """Write every machine's files as CSV to ``dest`` (``-``: standard output); returns rows written."""
    import csv
    import io
    import sys

    from tagger.atomic import atomic_text
    from tagger.exports.writer import guard_cell

    def write(out) -> int:
        w = csv.writer(out)
        w.writerow(COLUMNS)
        n = 0
        for r in shared_rows(url):
            w.writerow(
                [
                    guard_cell(r.path),
                    guard_cell(r.machine),
                    r.status,
                    guard_cell(r.caption or ""),
                    guard_cell("; ".join(r.keywords)),
                    r.reported_at.isoformat(timespec="seconds"),
                    r.content_hash or "",
                ]
            )
            n += 1
        return n

    if dest != "-":
        return atomic_text(dest, write)
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="replace", newline="")
    try:
        n = write(out)
        out.flush()
        return n
    finally:
        out.detach()
