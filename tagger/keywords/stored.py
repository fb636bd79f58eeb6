"""Derive each completed job's keywords once and keep them in the ledger.

Sidecars (``writeback``), the CSV and JSON exports and the contact sheet
(``readout``) all read what is stored here, so they show the same keywords.
A job's keywords are derived again only when the rules change (another
vocabulary, ``unmapped``, ``keyword_parent``, language or tagger's own
rules): that costs no credit, the caption is already in the ledger.
"""

from __future__ import annotations

import json

from tagger.keywords.derive import KeywordRules, Keywords, derive
from tagger.keywords.language import language, language_code
from tagger.keywords.vocabulary import load_vocabulary
from tagger.ledger.store import Ledger

__all__ = ["keyword_rules", "refresh_keywords", "stored_keywords", "warm_up"]


def keyword_rules(
    vocabulary: str = "", unmapped: str = "keep", locale: str = "en-US", parent: str = "CloudSight"
) -> KeywordRules:
    """The rules these settings ask for (reads the vocabulary file; ``VocabularyError`` if it is unusable)."""
    return KeywordRules(load_vocabulary(vocabulary) if vocabulary else None, unmapped, language_code(locale), parent)


def _categories(value: str | None) -> tuple[str, ...]:
    return tuple(json.loads(value)) if value else ()


def refresh_keywords(ledger: Ledger, rules: KeywordRules, job_id: int | None = None) -> int:
    """Derive and store the keywords of completed jobs (of one, or all) not derived under ``rules``; returns how many."""
    digest = rules.digest
    if job_id is None and not ledger.writes.has_stale_keywords(digest):
        return 0  # the usual end of a run: one index probe, not a read of every completed job
    done = after = 0
    while True:
        rows = ledger.writes.stale_keywords(digest, job_id, after_id=after)
        if not rows:
            return done
        ledger.writes.store_keywords(digest, [(r[0], *derive(r[1], _categories(r[2]), rules).to_json()) for r in rows])
        done += len(rows)
        after = rows[-1][0]


def stored_keywords(
    subject: str | None, paths: str | None, caption: str | None, categories: str | None, rules: KeywordRules
) -> Keywords:
    """A job's stored keywords; derived from its caption in memory when none are stored yet (a ledger nobody ran since)."""
    if subject is not None and paths is not None:
        return Keywords(tuple(json.loads(subject)), tuple(tuple(p) for p in json.loads(paths)))
    return derive(caption, _categories(categories), rules)


def warm_up(rules: KeywordRules) -> None:
    """Load the language's dictionary and index the vocabulary now, not when the first caption settles.

    simplemma unpickles a language's dictionary on first use (0.3 s for
    English, 2 s for German, holding the GIL): done mid-run, that stalls the
    thread that polls and submits while answers pile up.
    """
    language(rules.language).lemma("warm")
    _ = rules.matcher, rules.digest
