"""The spreadsheet round trip: held captions out to a CSV, a person's decisions back in, all rows checked first.

The CSV has ``path``, ``caption``, ``keywords`` (``; `` between them) and
an empty ``decision``. Read back, ``decision`` is ``approve``, ``reject``,
or empty (the photo stays held); an approved row whose caption or keywords
were changed is recorded as the person's edit. Every row is checked before
anything is recorded: an unknown path, an unknown decision, a path twice or
an empty edited caption refuses the whole file (``UsageError``, exit 2).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from typing import IO

from tagger.atomic import atomic_text
from tagger.display import count, display
from tagger.errors import UsageError
from tagger.keywords.derive import KeywordRules
from tagger.ledger.review import APPROVED, AWAITING, EDITED
from tagger.ledger.store import Ledger
from tagger.review.decisions import WORDS, Decision, record_decisions

__all__ = ["COLUMNS", "export_sheet", "import_sheet", "read_sheet"]

#: The columns written, in order; an imported file needs at least ``path`` and ``decision``.
COLUMNS = ("path", "caption", "keywords", "decision")
_SEP = "; "
_FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r", "\n")
#: How many problems the refusal lists (a file with thousands of bad rows says how many more).
_SHOWN = 10


def _guard(value: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula (undone on import)."""
    return "'" + value if value.startswith(_FORMULA_LEADERS) else value


def _unguard(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_FORMULA_LEADERS) else value


def _keywords(value: str | None) -> list[str]:
    return list(json.loads(value)) if value else []


def export_sheet(ledger: Ledger, dest: str, roots: list[bytes] | None = None) -> int:
    """Write the photos awaiting review (under ``roots``) to ``dest`` (``-``: standard output); returns rows."""
    rows = ledger.reviews.sheet(roots)

    def write(out: IO[str]) -> int:
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for _fid, directory, name, _decision, caption, keywords, *_theirs in rows:
            path = display(os.path.join(directory, name))
            writer.writerow([_guard(path), _guard(caption or ""), _guard(_SEP.join(_keywords(keywords))), ""])
        return len(rows)

    if dest == "-":
        import sys

        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        try:
            n = write(out)
            out.flush()
            return n
        finally:
            out.detach()
    # UTF-8 with a BOM: Excel then reads accents right; LibreOffice and Python ignore it.
    return atomic_text(dest, lambda out: (out.write("\ufeff"), write(out))[1])


def read_sheet(text: str) -> list[dict[str, str]]:
    """The rows of a CSV as dicts (a BOM and ``;``-separated files from a spreadsheet in some locales accepted)."""
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    missing = {"path", "decision"} - set(reader.fieldnames or ())
    if missing:
        raise UsageError(
            f"the review CSV lacks the {'column' if len(missing) == 1 else 'columns'} {', '.join(sorted(missing))} (it needs {', '.join(COLUMNS)})"
        )
    return [{k.strip(): (v or "") for k, v in row.items() if k is not None} for row in reader]


def _check(ledger: Ledger, rows: Iterable[dict[str, str]]) -> tuple[list[Decision], list[str]]:
    """The decisions the rows say, and every problem found (row numbers as the spreadsheet shows them)."""
    held = {display(os.path.join(r[1], r[2])): r for r in ledger.reviews.sheet(awaiting_only=False)}
    decisions: list[Decision] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, row in enumerate(rows, start=2):
        path = _unguard(row.get("path", "").strip())
        word = row.get("decision", "").strip().lower()
        if path not in held:
            problems.append(f"row {number}: {path or '(no path)'!r} is not a photo held for review")
            continue
        if path in seen:
            problems.append(f"row {number}: {path!r} appears twice")
            continue
        seen.add(path)
        if word not in WORDS:
            problems.append(f"row {number}: unknown decision {word!r} (approve, reject, or empty to leave it held)")
            continue
        decision = WORDS[word]
        file_id, _dir, _name, _current, machine, machine_kw, theirs, their_kw = held[path]
        if decision == AWAITING:
            continue  # left held: nothing recorded, whatever the caption cell says
        if decision in (APPROVED, EDITED):
            caption = _unguard(row["caption"]).strip() if "caption" in row else (theirs or machine or "")
            if "keywords" in row:
                keywords = [k.strip() for k in _unguard(row["keywords"]).split(";") if k.strip()]
            else:
                keywords = _keywords(their_kw if theirs is not None else machine_kw)
            if not caption:
                problems.append(f"row {number}: the caption is empty (reject the photo instead)")
                continue
            if caption == (machine or "") and keywords == _keywords(machine_kw):
                decisions.append(Decision(file_id, APPROVED))
            else:
                # Keywords the person left as the machine's follow their new text; changed ones are theirs.
                own = None if keywords == _keywords(machine_kw) else tuple(keywords)
                decisions.append(Decision(file_id, EDITED, caption, own))
            continue
        decisions.append(Decision(file_id, decision))
    return decisions, problems


def import_sheet(ledger: Ledger, source: str, rules: KeywordRules) -> int:
    """Record the decisions of the CSV at ``source`` (all rows checked first: any problem changes nothing); returns rows."""
    try:
        with open(source, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not UTF-8 text: save the spreadsheet as CSV UTF-8 and import it again") from None
    decisions, problems = _check(ledger, read_sheet(text))
    if problems:
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise UsageError(
            f"{source}: nothing was changed, {count(len(problems), 'row')} {'needs' if len(problems) == 1 else 'need'} fixing{more}:\n  "
            + "\n  ".join(problems[:_SHOWN])
        )
    try:
        return record_decisions(ledger, decisions, rules)
    except ValueError as exc:
        raise UsageError(f"{source}: nothing was changed: {exc}") from None
