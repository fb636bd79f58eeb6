"""Folder marks, and small indexes that let a no-op run skip the rows that need nothing.

``folder_marks`` holds, per folder, endpoint and locale, a digest of the
folder's candidate files (name, size, mtime_ns) as a run last found them all
done. Triggers delete a folder's marks whenever any of its file rows is
inserted, deleted or changed in a column the planner weighs, or a job linked
to one of its files is inserted, deleted, or changes id, endpoint or locale:
a mark that exists was written after the last such change, so the folder
still reads as it did then. (A migration that rebuilds ``files`` or ``jobs``
drops these triggers; the ledger then stops using marks until they are back,
see ``tagger.ledger.planning``.)

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

#: The triggers that keep ``folder_marks`` true; the ledger uses marks only while all of them exist.
TRIGGERS = {
    "folder_marks_file_insert": "AFTER INSERT ON files BEGIN DELETE FROM folder_marks WHERE dir = new.dir; END",
    "folder_marks_file_delete": "AFTER DELETE ON files BEGIN DELETE FROM folder_marks WHERE dir = old.dir; END",
    # Every column the planner weighs of a file (written_job, sidecar and the timestamps are not among them;
    # nor is hash_scheme: a folder holding scheme-1 rows is read in full whatever its mark, before marks are looked at).
    "folder_marks_file_update": """AFTER UPDATE ON files
        WHEN old.dir IS NOT new.dir OR old.name IS NOT new.name OR old.size IS NOT new.size
          OR old.mtime_ns IS NOT new.mtime_ns OR old.state IS NOT new.state OR old.content_hash IS NOT new.content_hash
          OR old.job_id IS NOT new.job_id OR old.id IS NOT new.id
        BEGIN DELETE FROM folder_marks WHERE dir = old.dir; DELETE FROM folder_marks WHERE dir = new.dir; END""",
    "folder_marks_job_insert": """AFTER INSERT ON jobs
        BEGIN DELETE FROM folder_marks WHERE dir IN (SELECT dir FROM files WHERE job_id = new.id); END""",
    "folder_marks_job_delete": """AFTER DELETE ON jobs
        BEGIN DELETE FROM folder_marks WHERE dir IN (SELECT dir FROM files WHERE job_id = old.id); END""",
    "folder_marks_job_update": """AFTER UPDATE ON jobs
        WHEN old.id IS NOT new.id OR old.endpoint IS NOT new.endpoint OR old.locale IS NOT new.locale
        BEGIN DELETE FROM folder_marks WHERE dir IN (SELECT dir FROM files WHERE job_id = old.id OR job_id = new.id); END""",
}


def apply(db: Database) -> None:
    """Add ``folder_marks`` and its triggers, ``jobs_keyword_rules``, ``files_attention`` and ``jobs_duplicates``."""
    db.execute(
        """CREATE TABLE folder_marks (
            dir BLOB NOT NULL,
            endpoint TEXT NOT NULL,
            locale TEXT NOT NULL,
            listing BLOB NOT NULL,       -- digest of the folder's candidate files when last found all done
            PRIMARY KEY (dir, endpoint, locale)
        ) WITHOUT ROWID"""
    )
    for name, body in TRIGGERS.items():
        db.execute(f"CREATE TRIGGER {name} {body}")
    db.execute("CREATE INDEX jobs_keyword_rules ON jobs (keyword_rules) WHERE state = 'completed'")
    db.execute("CREATE INDEX files_attention ON files (dir, state, job_id) WHERE state != 'active' OR job_id IS NULL")
    db.execute("CREATE INDEX jobs_duplicates ON jobs (possible_duplicates) WHERE possible_duplicates != 0")
