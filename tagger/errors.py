"""User-facing errors of the pipeline, and the exit status each maps to.

TaggerError                 root of everything the CLI turns into a sentence
 +-- UsageError             bad flags, config or missing key        exit 2
      +-- Problems          several of them, all reported at once    exit 2
 +-- LedgerError            ledger unusable (newer schema, corrupt)  exit 2
      +-- LedgerLocked      another run holds the ledger             exit 3
      +-- LedgerWriteError  the ledger cannot be written: disk full (exit 3),
                            read-only or no permission (exit 2)
 +-- ExportError            an export cannot be written (profile, path) exit 2
 +-- PrepareError           one image cannot be prepared: recorded, the batch goes on
 +-- SidecarError           one sidecar cannot be read or written: recorded, retried next run

The HTTP client has its own root, ``tagger.client.cloudsight.APIError``. A run that
stops early (refused key, service unreachable, credit cap) is not an error:
``pipeline.run`` returns it with exit status 3 and the reason.
"""

from __future__ import annotations

__all__ = [
    "TaggerError",
    "UsageError",
    "Problems",
    "LedgerError",
    "LedgerLocked",
    "LedgerWriteError",
    "ExportError",
    "PrepareError",
    "SidecarError",
    "cannot_read",
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


class Problems(UsageError):
    """Every problem found before a run started (options, settings, paths, files): reported together."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems, nothing was sent or changed:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(text)


class LedgerError(TaggerError):
    """The ledger cannot be opened or upgraded safely."""

    exit_code = EXIT_USAGE


class LedgerLocked(LedgerError):
    """Another live process holds the ledger."""

    exit_code = EXIT_STOPPED


class LedgerWriteError(LedgerError):
    """The ledger (or its folder) cannot be written; ``kind`` says why: "full", "read-only", "permission" or "io".

    A full disk (or an I/O error) stops the run, which a re-run resumes once it
    is fixed (exit 3); a read-only ledger or a permission problem is the
    setup's (exit 2).
    """

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = EXIT_STOPPED if kind in ("full", "io") else EXIT_USAGE


class ExportError(TaggerError):
    """An export could not be written: unknown profile or format, or an unwritable destination."""

    exit_code = EXIT_USAGE


class PrepareError(TaggerError):
    """One image could not be prepared for upload; ``reason`` is a sentence for the ledger."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def cannot_read(exc: OSError) -> str:
    """The reason recorded for a file that could not be read (by the planner or a worker, in the same words)."""
    if isinstance(exc, IsADirectoryError):
        return "not a regular file"
    if isinstance(exc, FileNotFoundError):
        text = "file not found"
    elif isinstance(exc, PermissionError):
        text = "permission denied"
    else:
        text = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot read the file: {text}"


class SidecarError(TaggerError):
    """A sidecar exists but cannot be read, parsed or written; it is left exactly as it was."""
