"""User-facing errors of the pipeline, and the exit status each maps to.

TaggerError                 root of everything the CLI turns into a sentence
 +-- UsageError             bad flags, config or missing key        exit 2
 +-- LedgerError            ledger unusable (newer schema, corrupt)  exit 2
      +-- LedgerLocked      another run holds the ledger             exit 3

The HTTP client has its own root, ``tagger.cloudsight.APIError``. A run that
stops early (refused key, service unreachable, credit cap) is not an error:
``pipeline.run`` returns it with exit status 3 and the reason.
"""

from __future__ import annotations

__all__ = [
    "TaggerError",
    "UsageError",
    "LedgerError",
    "LedgerLocked",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "EXIT_STOPPED",
]

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3


class TaggerError(Exception):
    """Root of the errors a user sees as a sentence, with an exit status."""

    exit_code = EXIT_USAGE


class UsageError(TaggerError):
    """Bad command line, configuration or credentials setup."""

    exit_code = EXIT_USAGE


class LedgerError(TaggerError):
    """The ledger cannot be opened or upgraded safely."""

    exit_code = EXIT_USAGE


class LedgerLocked(LedgerError):
    """Another live process holds the ledger."""

    exit_code = EXIT_STOPPED
