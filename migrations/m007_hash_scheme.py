"""Record which identity scheme each file's content hash is of.

Rows written before this migration hold scheme-1 hashes (JPEG and PNG by
structure, every other format whole) and keep ``hash_scheme`` NULL; the
planner re-keys them, once, to scheme 2 (metadata skipped in every format),
carrying their jobs over at no credit. The partial index holds only the
rows still on scheme 1, by state and folder: once a run has seen a folder,
none of its present files are left in it, so asking costs nothing.
"""

from __future__ import annotations

from sqlite_utils import Database


def apply(db: Database) -> None:
    """Add ``files.hash_scheme`` and the index of rows still on scheme 1."""
    db.execute("ALTER TABLE files ADD COLUMN hash_scheme INTEGER")
    db.execute(
        "CREATE INDEX files_old_scheme ON files (state, dir) WHERE hash_scheme IS NULL AND content_hash IS NOT NULL"
    )
