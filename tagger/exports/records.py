"""Plain records passed between the ledger and the writers."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Record"]


@dataclass(frozen=True)
class Record:
    """What the ledger knows about one file, as the writers need it.

    ``status`` speaks the service's words (``completed``, ``skipped``,
    ``timeout``, ``not found``) plus ``failed`` (could not be processed) and
    ``pending`` (not settled yet). Paths are display strings (see
    ``tagger.display``: a name that is not UTF-8 is spelled with ``\\xNN``,
    reversibly), ``relpath`` is relative to the scanned root; ``source`` is
    the exact name, bytes and all.
    """

    path: str
    relpath: str
    filename: str
    status: str
    caption: str | None = None
    keywords: tuple[str, ...] = ()
    reason: str | None = None
    flags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    content_hash: str | None = None
    token: str | None = None
    endpoint: str | None = None
    submitted_at: str | None = None
    settled_at: str | None = None
    modified_at: str | None = None
    size: int | None = None
    reused_from: str | None = None  # the photo whose caption this one shares (a similar copy: no credit spent)
    extra: dict = field(default_factory=dict, compare=False)
    #: The file's exact name on disk (None for a remote image): what the exiftool profile and the sheet open.
    source: bytes | None = field(default=None, compare=False, repr=False)
