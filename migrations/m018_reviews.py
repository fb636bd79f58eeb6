"""Reviews: a person's decision on each held caption before it reaches a sidecar.

One row per file whose caption was held for review (``[output] hold``). The
row belongs to the job whose caption was held (``job_id``): when the file's
content changes it gets another job, and the old row no longer applies.
``decision`` is ``awaiting`` (held, nothing written), ``approved`` (the
machine's caption, as it is), ``edited`` (the person's ``caption`` and
``keywords``, which tagger never replaces) or ``rejected`` (no caption
anywhere). ``applied_at`` is when `tagger apply` last wrote it.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add the ``reviews`` table and its index by decision."""
    db.execute(
        """CREATE TABLE reviews (
            file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            decision TEXT NOT NULL DEFAULT 'awaiting'
                CHECK (decision IN ('awaiting', 'approved', 'edited', 'rejected')),
            caption TEXT,          -- the person's caption (edited)
            keywords TEXT,         -- the person's keywords, JSON list (edited)
            keyword_paths TEXT,    -- their hierarchies, JSON list of lists (edited)
            held_at REAL NOT NULL,
            decided_at REAL,
            applied_at REAL
        )"""
    )
    db.execute("CREATE INDEX reviews_job ON reviews (job_id)")
    db.execute("CREATE INDEX reviews_decision ON reviews (decision)")
