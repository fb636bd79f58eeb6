"""Index jobs by (endpoint, state).

A no-op run asks "does any job belong to another endpoint?" and "how many
jobs of this endpoint are queued?"; the dispatcher pages through one
endpoint's jobs in one state by id. All three read this index, not the table.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add the index."""
    db.execute("CREATE INDEX IF NOT EXISTS jobs_endpoint_state ON jobs (endpoint, state)")
