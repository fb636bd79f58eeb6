"""A self-contained HTML contact sheet: thumbnails, captions, keywords, filters, no network.

The page is one file: stylesheet, script, records and thumbnails (small
JPEGs as base64) are all inline, and a Content-Security-Policy forbids any
other load, so it opens from file:// on a machine with no network. Records
travel as JSON inside ``<script type="application/json">`` and every card is
built with ``textContent``: a caption is untrusted text and can never become
markup. At 10,000 images only the first page of cards is in the DOM and a
thumbnail is attached when its card nears the viewport.

Size: about 0.15 KB per record plus one thumbnail per distinct file, at
most 4 KB at a 160 px edge (5.5 KB as base64; photos typically take 2-3 KB);
records that point at the same file share it. 10,000 distinct photos make a
page of roughly 25-55 MB. Thumbnails cost ~25 ms per 24-megapixel JPEG
(decoded at 1/8 scale), spread over a few threads.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Iterable, Mapping
from typing import IO, Any

from tagger.atomic import atomic_text
from tagger.errors import ExportError
from tagger.exports.records import Record
from tagger.sheet.assets import PAGE_SIZE, css, js
from tagger.sheet.thumbs import thumbnails

__all__ = ["write_report", "PAGE_SIZE"]

_LABELS = {
    "counts": "By status",
    "reasons": "By reason",
    "credits_used": "Credits used",
    "first_run": "First run",
    "last_run": "Last run",
    "endpoint": "Endpoint",
}

_SCRIPT_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _script_json(value: Any) -> str:
    """JSON that cannot close or confuse the <script> element it sits in."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_SCRIPT_ESCAPES)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _label(key: str) -> str:
    return _LABELS.get(key, key.replace("_", " ").capitalize())


def _chips(mapping: Mapping[Any, Any]) -> str:
    items = sorted(
        mapping.items(), key=lambda kv: (-kv[1], str(kv[0])) if isinstance(kv[1], (int, float)) else (0, str(kv[0]))
    )
    chips = "".join(
        f'<span class="chip">{html.escape(str(k) if k not in (None, "") else "(none)")}<b>{html.escape(str(v))}</b></span>'
        for k, v in items
    )
    return f'<div class="chips">{chips}</div>'


def _summary_html(summary: Mapping[str, Any]) -> str:
    """The header: status and reason counts as chips, every other entry as a label and value."""
    blocks: list[str] = []
    pairs: list[str] = []
    for key, value in summary.items():
        if isinstance(value, Mapping):
            if value:
                blocks.append(f"<div><dt>{html.escape(_label(key))}</dt><dd>{_chips(value)}</dd></div>")
            continue
        if value is None or value == "":
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        pairs.append(f'<div class="pair"><dt>{html.escape(_label(key))}</dt><dd>{html.escape(shown)}</dd></div>')
    return f"<dl>{''.join(pairs)}</dl><dl>{''.join(blocks)}</dl>"


def _row(record: Record, thumb: int | None) -> list[Any]:
    # Positional, not keyed: at 10,000 records the key names alone would be ~1 MB.
    return [
        record.filename,
        record.relpath.replace("\\", "/"),
        record.caption or "",
        list(record.keywords),
        record.status,
        record.reason or "",
        thumb,
        record.path,
        record.reused_from or "",
    ]


def _write_page(out: IO[str], records: Iterable[Record], summary: Mapping[str, Any], edge: int) -> int:
    script = js()
    style = css().replace("--edge:160px", f"--edge:{edge}px")
    csp = (
        f"default-src 'none'; img-src data:; style-src {_csp_hash(style)}; "
        f"script-src {_csp_hash(script)}; base-uri 'none'; form-action 'none'"
    )
    # The policy holds single quotes, which a double-quoted attribute keeps as they are.
    csp_attr = html.escape(csp, quote=False).replace('"', "&quot;")
    out.write(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp_attr}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>tagger contact sheet</title>\n<style>{style}</style></head>\n<body>\n"
        f'<header><h1>tagger contact sheet</h1><div class="summary">{_summary_html(summary)}</div></header>\n'
        '<div class="controls" role="search">'
        '<label>Status <select id="status"><option value="">all</option></select></label>'
        '<label>Reason <select id="reason"><option value="">all</option></select></label>'
        '<label>Search <input id="search" type="search" placeholder="caption, keyword or file name"'
        ' autocomplete="off"></label><span id="count" aria-live="polite"></span></div>\n'
        '<main id="grid"></main>\n<button id="more" type="button" hidden>Show more</button>\n'
        '<script type="application/json" id="records">['
    )
    # Stream the records, numbering each distinct file once; thumbnails follow.
    ids: dict[str, int] = {}
    count = 0
    for record in records:
        thumb = ids.setdefault(record.path, len(ids))
        out.write(("," if count else "") + "\n" + _script_json(_row(record, thumb)))
        count += 1
    out.write(']</script>\n<script type="application/json" id="thumbs">{')
    first = True
    for thumb_id, data in zip(ids.values(), thumbnails(ids.keys(), edge), strict=True):
        if data is None:
            continue
        out.write(("" if first else ",") + f'\n"{thumb_id}":"{base64.b64encode(data).decode("ascii")}"')
        first = False
    out.write(f"}}</script>\n<script>{script}</script>\n</body></html>\n")
    return count


def write_report(records: Iterable[Record], dest: str, *, summary: dict, thumb_edge: int = 160) -> int:
    """Write the contact sheet for ``records`` to ``dest`` atomically; return the number of images in it.

    ``summary`` is rendered as given: ``counts`` and ``reasons`` (mappings)
    as chips, scalars such as ``credits_used``, ``first_run``, ``last_run``
    and ``endpoint`` as labelled values. Raises :class:`ExportError` when
    ``dest`` cannot be written.
    """
    if thumb_edge < 16 or thumb_edge > 1024:
        raise ExportError(f"thumbnail edge {thumb_edge} px is out of range; use 16 to 1024")
    return atomic_text(dest, lambda out: _write_page(out, records, summary or {}, thumb_edge))
