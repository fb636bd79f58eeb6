"""Remember when each job was last seen working and first seen done (seconds after submitting).

The next run seeds its poll schedule from these, instead of relearning the
service's latency with extra polls.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add ``jobs.latency_low`` and ``jobs.latency_high``."""
    db.execute("ALTER TABLE jobs ADD COLUMN latency_low REAL")
    db.execute("ALTER TABLE jobs ADD COLUMN latency_high REAL")
