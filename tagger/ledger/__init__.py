"""The job ledger: the SQLite file that is the truth about every file, job and token.

Owns: every SQL statement of the package (``store``), and the schema's
migrations (``tagger.ledger.migrations``, shipped from the top-level
``migrations/`` folder).

May import: the standard library, sqlite-utils, ``tagger.errors``.
"""

from tagger.ledger.store import SETTLED_STATUS, FileState, Job, JobState, Ledger, file_status, under_roots

__all__ = ["Ledger", "JobState", "FileState", "Job", "SETTLED_STATUS", "file_status", "under_roots"]
