"""Remote images (``tagger run --urls``): one row per URL, pointing at its job."""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add the ``remote`` table."""
    db.execute(
        """CREATE TABLE remote (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            job_id INTEGER REFERENCES jobs(id),
            first_seen REAL NOT NULL,
            last_seen REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX remote_job ON remote (job_id)")
