"""What this ledger last reported to a shared store of each file, so that a run sends only what changed.

One row per (store, path): ``store`` names the shared database (its name and
the moment its schema was created), ``path`` is the path as reported, and
``digest`` a hash of what was reported (content, status, caption, keywords).
A file whose row is gone from the report is withdrawn from the store.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add the ``shared_published`` table."""
    db.execute(
        """CREATE TABLE shared_published (
            store TEXT NOT NULL,
            path TEXT NOT NULL,
            digest TEXT NOT NULL,
            PRIMARY KEY (store, path)
        ) WITHOUT ROWID"""
    )
