"""Decisions on held captions: approve, reject, or edit (the caption and keywords become the person's)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from tagger.keywords.derive import KeywordRules, clean_keywords, derive
from tagger.ledger.review import APPROVED, AWAITING, DECISIONS, EDITED, REJECTED
from tagger.ledger.store import Ledger

__all__ = ["Decision", "record_decisions", "prepare", "edited_keywords", "WORDS"]

#: What people write (page, spreadsheet) -> the decision recorded. Empty: leave it held.
WORDS = {
    "approve": APPROVED,
    "approved": APPROVED,
    "reject": REJECTED,
    "rejected": REJECTED,
    "edit": EDITED,
    "edited": EDITED,
    "": AWAITING,
    "hold": AWAITING,
    "awaiting": AWAITING,
}

#: Longest caption a person may write (the service's own are far shorter; a bound keeps the ledger sane).
MAX_CAPTION = 2000


@dataclass(frozen=True)
class Decision:
    """One person's decision on one held photo (``caption``/``keywords`` only for an edit; keywords None: derive)."""

    file_id: int
    decision: str
    caption: str | None = None
    keywords: tuple[str, ...] | None = None


def edited_keywords(caption: str, keywords: Iterable[str] | None, rules: KeywordRules) -> tuple[str, str]:
    """(keywords, keyword paths) as JSON for an edited caption: the person's list, else derived from their text.

    Derived from the text alone (the machine's categories described another caption); no credit, nothing sent.
    """
    if keywords is None:
        derived = derive(caption, (), rules)
        subject, paths = derived.subject, derived.paths
    else:
        subject = tuple(clean_keywords(keywords))
        paths = tuple((*rules.parent_path, k) for k in subject)
    return json.dumps(list(subject), ensure_ascii=False), json.dumps([list(p) for p in paths], ensure_ascii=False)


def _clean_caption(caption: str | None) -> str:
    text = " ".join((caption or "").split())
    if not text:
        raise ValueError("an edited caption cannot be empty (reject the photo instead)")
    if len(text) > MAX_CAPTION:
        raise ValueError(f"an edited caption may hold at most {MAX_CAPTION} characters")
    return text


def prepare(
    decisions: Iterable[Decision], rules: KeywordRules
) -> list[tuple[int, str, str | None, str | None, str | None]]:
    """Check every decision and turn it into the rows the ledger records; ``ValueError`` names the first bad one."""
    rows: list[tuple[int, str, str | None, str | None, str | None]] = []
    for d in decisions:
        if d.decision not in DECISIONS:
            raise ValueError(f"unknown decision {d.decision!r}")
        if d.decision == EDITED:
            caption = _clean_caption(d.caption)
            kw, paths = edited_keywords(caption, d.keywords, rules)
            rows.append((d.file_id, EDITED, caption, kw, paths))
        else:
            rows.append((d.file_id, d.decision, None, None, None))
    return rows


def record_decisions(ledger: Ledger, decisions: Iterable[Decision], rules: KeywordRules) -> int:
    """Check, then record, these decisions in one transaction (all or none); returns rows recorded."""
    return ledger.reviews.decide_all(prepare(decisions, rules))
