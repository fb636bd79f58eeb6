"""A person decides: captions held for review, a loopback page and a spreadsheet to decide, and applying the decisions.

Owns: ``decisions`` (approve, reject, edit: an edited caption's keywords
derived again from its text, no credit), ``apply`` (approved and edited
captions into sidecars, by the same merge rules as a run), ``spreadsheet``
(the CSV round trip, every row checked before anything changes),
``thumbcache`` (thumbnails made once, kept on disk), ``server`` (the
loopback page: token, same-origin checks, JSON API) and its package data
``page.html``, ``review.js`` and ``review.css``.

May import: the standard library, Pillow, ``tagger.keywords``,
``tagger.ledger``, ``tagger.sidecars``, ``tagger.sheet`` (its thumbnails),
``tagger.atomic``, ``tagger.display``, ``tagger.errors``. Not the client,
the pipeline or the exports.
"""

from __future__ import annotations

from tagger.review.apply import ApplyResult, apply_reviews
from tagger.review.decisions import Decision, record_decisions
from tagger.review.spreadsheet import export_sheet, import_sheet

__all__ = ["ApplyResult", "apply_reviews", "Decision", "record_decisions", "export_sheet", "import_sheet"]
