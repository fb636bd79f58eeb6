"""The job ledger: the SQLite file that is the truth about every file, job and token.

Owns: every SQL statement against the ledger (the emulator's state file
and the shared PostgreSQL store keep theirs): ``store`` (the ``Ledger``:
opening and locking, runs, files, jobs, reading out), with the statements
of four concerns it inherits, ``planning`` (the planner's), ``similarity``
(similar photos), ``writes`` (keywords, sidecar bookkeeping, adoption) and
``review`` (captions held for a person, their decisions);
``answers`` (final answers read out for the shared store),
``states`` (file and job states), ``keys`` (normal forms of endpoints and
locales), ``roots`` (path prefixes in SQL), and the schema's migrations
(``tagger.ledger.migrations``, shipped from the top-level ``migrations/``
folder).

May import: the standard library, sqlite-utils, portalocker (the run lock on
Windows; POSIX takes flock itself), ``tagger.errors``.
"""

from tagger.ledger.store import SETTLED_STATUS, FileState, Job, JobState, Ledger, file_status, under_roots

__all__ = ["Ledger", "JobState", "FileState", "Job", "SETTLED_STATUS", "file_status", "under_roots"]
