"""The job ledger: the SQLite file that is the truth about every file, job and token.

Owns: every SQL statement against the ledger (the emulator's state file
and the shared PostgreSQL store keep theirs): ``store`` (the ``Ledger``:
opening and locking, transactions, runs, the job life cycle), and the
statements of six concerns, each a small class the ``Ledger`` builds with
itself as their ``core.LedgerCore`` (its reads, transactions, clock and
locale) and holds as an attribute: ``files`` (``ledger.files``: what a scan
found, linking files to jobs), ``planning`` (``ledger.planning``: the
planner's), ``similarity`` (``ledger.similar``: similar photos), ``writes``
(``ledger.writes``: keywords, sidecar bookkeeping, adoption), ``review``
(``ledger.reviews``: captions held for a person, their decisions) and
``readout`` (``ledger.readout``: exports, the status counts); results with
more than one field are named rows (NamedTuples). Also ``answers`` (for
the shared store: final answers and tokens read out, what was reported of
each file), ``attention`` (what ``status``
lists), ``states`` (file and job states), ``keys`` (normal forms of
endpoints and locales), ``roots`` (path prefixes in SQL), and the schema's
migrations (``tagger.ledger.migrations``, shipped from the top-level
``migrations/`` folder).

May import: the standard library, sqlite-utils, portalocker (the run lock on
Windows; POSIX takes flock itself), ``tagger.errors``.
"""

from tagger.ledger.store import SETTLED_STATUS, FileState, Job, JobState, Ledger, file_status, under_roots

__all__ = ["Ledger", "JobState", "FileState", "Job", "SETTLED_STATUS", "file_status", "under_roots"]
