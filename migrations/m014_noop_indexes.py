"""Small indexes that let a no-op run's end-of-run questions skip the rows that need nothing.

Every run ends by asking whether any completed job's keywords are stale,
how many files need attention, and how many uploads may have been charged
twice. Without these each question read every job or every file under the
run's roots; with them, a ledger where all is done answers from a few index
probes, whatever its size.

- ``jobs_keyword_rules``: completed jobs by the rules their keywords were
  derived under (a job derived under other rules is one index range away).
- ``files_attention``: files that are missing, failed, or not yet linked to
  a job, by folder (the partial index is empty when all is captioned).
- ``jobs_duplicates``: jobs with possible duplicate charges (usually none).
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add ``jobs_keyword_rules``, ``files_attention`` and ``jobs_duplicates``."""
    db.execute("CREATE INDEX jobs_keyword_rules ON jobs (keyword_rules) WHERE state = 'completed'")
    db.execute("CREATE INDEX files_attention ON files (dir, state, job_id) WHERE state != 'active' OR job_id IS NULL")
    db.execute("CREATE INDEX jobs_duplicates ON jobs (possible_duplicates) WHERE possible_duplicates != 0")
