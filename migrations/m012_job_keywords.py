"""Keep each job's keywords, derived once from its caption, beside the caption.

``keywords`` (dc:subject), ``keyword_paths`` (hierarchies) and ``unmapped``
(words the vocabulary lacks) are JSON lists; ``keyword_rules`` fingerprints
the vocabulary and rules they were derived with, so a changed vocabulary
re-derives them at the next run, for no credit. Sidecars, CSV and the
contact sheet all read these.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add ``jobs.keywords``, ``jobs.keyword_paths``, ``jobs.unmapped`` and ``jobs.keyword_rules``."""
    for column in ("keywords", "keyword_paths", "unmapped", "keyword_rules"):
        db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
