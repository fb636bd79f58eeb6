"""Remember the credit balance the service last reported, for dry-run plans."""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add ``runs.credit_balance``."""
    db.execute("ALTER TABLE runs ADD COLUMN credit_balance INTEGER")
