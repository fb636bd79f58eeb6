"""Perceptual fingerprints of prepared images, and jobs that share a similar photo's answer.

``fingerprints`` holds one row per content (endpoint-independent), indexed by
its 32-bit region key so that candidates among a million rows are a few
index probes away. ``jobs.similar_to`` names the job whose answer a job
shares (``waiting`` while that job is in flight); ``jobs.no_reuse`` marks a
job the user sent on its own (``tagger retry --reused``).
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add ``fingerprints``, ``jobs.similar_to`` and ``jobs.no_reuse``."""
    db.execute(
        """CREATE TABLE fingerprints (
            content_hash TEXT PRIMARY KEY,
            key INTEGER NOT NULL,      -- 8 region means of the grey thumbnail, 4 bits each
            means INTEGER NOT NULL,    -- the same 8 means, 8 bits each (a 64-bit pre-filter SQLite applies)
            aspect REAL NOT NULL,      -- width / height of the upright image
            print BLOB NOT NULL        -- 16x16 grey thumbnail, then 4x4 RGB thumbnail
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX fingerprints_key ON fingerprints (key, aspect)")
    db.execute("ALTER TABLE jobs ADD COLUMN similar_to INTEGER REFERENCES jobs(id)")
    db.execute("ALTER TABLE jobs ADD COLUMN no_reuse INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX jobs_similar_to ON jobs (similar_to) WHERE similar_to IS NOT NULL")
