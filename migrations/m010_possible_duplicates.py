"""Count uploads that may have been charged twice, and remember which job's last answer was lost.

``jobs.lost_answer`` is 1 while the job's latest POST may have reached the
service (and been charged) without its answer reaching tagger: a read
timeout, a reset, a 5xx, or a crash in mid-air. The next POST of that job
that may reach the service adds one to ``jobs.possible_duplicates``. A job
held for ``tagger retry --ambiguous`` (``[run] resend_ambiguous = false``)
is in the new state ``held``.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add ``jobs.possible_duplicates`` and ``jobs.lost_answer``."""
    db.execute("ALTER TABLE jobs ADD COLUMN possible_duplicates INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE jobs ADD COLUMN lost_answer INTEGER NOT NULL DEFAULT 0")
