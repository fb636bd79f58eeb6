"""Index the files whose sidecar does not yet hold their job's caption.

Every run asks for them (a crash between settling and writing leaves some);
on a large ledger where all is written, the partial index is empty and the
question costs nothing.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add the partial index."""
    db.execute("CREATE INDEX files_unwritten ON files (job_id) WHERE state = 'active' AND written_job IS NOT job_id")
