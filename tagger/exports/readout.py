"""Turn ledger rows into ``Record``s for the exports and the report."""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Callable, Iterator

from tagger.display import display, iso
from tagger.exports.records import Record
from tagger.keywords.derive import KeywordRules, derive
from tagger.ledger.store import Ledger, file_status

__all__ = ["iter_records", "display", "AWAITING_REVIEW"]


def _keywords(
    stored: str | None, caption: str | None, categories: str | None, rules: Callable[[], KeywordRules]
) -> tuple[str, ...]:
    if stored is not None:
        return tuple(json.loads(stored))
    return derive(caption, json.loads(categories) if categories else (), rules()).subject


#: The status a held caption shows in the exports until a person decides (not "completed": importers leave it out).
AWAITING_REVIEW = "awaiting review"


def _reviewed(review: tuple[str, str | None, str | None], caption: str | None, stored: str | None):
    """(status, caption, stored keywords) of a file whose caption was held, by the person's decision."""
    decision, their_caption, their_keywords = review
    if decision == "awaiting":
        return AWAITING_REVIEW, caption, stored
    if decision == "rejected":
        return "rejected", None, None
    if decision == "edited":
        return "completed", their_caption, their_keywords or "[]"
    return "completed", caption, stored


def iter_records(
    ledger: Ledger, *, include_missing: bool = False, rules: KeywordRules | Callable[[], KeywordRules] | None = None
) -> Iterator[Record]:
    """Every file the ledger knows (missing ones only when asked), in path order.

    Keywords are those the ledger stores (the ones the sidecars got); ``rules``
    (or a function giving them, called only if needed) derive them for a job
    no run has derived yet.
    """
    cache: list[KeywordRules] = []
    # A person's review decides what the exports say of a held caption (usually no row is held: an empty dict).
    reviewed = ledger.reviews.overrides()

    def current() -> KeywordRules:
        if not cache:
            cache.append(rules() if callable(rules) else rules or KeywordRules())
        return cache[0]

    for row in ledger.readout.file_rows(include_missing=include_missing):
        (
            directory,
            name,
            root,
            size,
            mtime_ns,
            digest,
            fstate,
            freason,
            jstate,
            token,
            endpoint,
            caption,
            jreason,
            flags,
            categories,
            submitted,
            settled,
            last_error,
            stored,
            lender_dir,
            lender_name,
        ) = row
        status = file_status(fstate, jstate)
        cats = tuple(json.loads(categories)) if categories else ()
        completed = status == "completed"
        source = None
        review = reviewed.get((directory, name)) if completed and reviewed else None
        if review is not None:
            status, caption, stored = _reviewed(review, caption, stored)
            completed = status != "rejected"
        if directory is None:  # a remote image: ``name`` is its URL
            path = relpath = name
            filename = urllib.parse.urlsplit(name).path.rsplit("/", 1)[-1] or name
        else:
            full = os.path.join(directory, name)
            path, relpath, filename = display(full), display(os.path.relpath(full, root)), display(name)
            source = os.fsencode(full)
        yield Record(
            path=path,
            relpath=relpath,
            filename=filename,
            status=status,
            caption=caption if completed else None,
            keywords=_keywords(stored, caption, categories, current) if completed else (),
            reason=freason if fstate != "active" else (jreason or (last_error if status == "pending" else None)),
            flags=tuple(json.loads(flags)) if flags else (),
            categories=cats,
            content_hash=digest,
            token=token,
            endpoint=endpoint,
            submitted_at=iso(submitted) or None,
            settled_at=iso(settled) or None,
            modified_at=iso(mtime_ns / 1e9) if mtime_ns else None,
            size=size,
            reused_from=display(os.path.join(lender_dir, lender_name)) if lender_dir is not None else None,
            source=source,
        )
