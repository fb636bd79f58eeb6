"""Read a list of image URLs: one per line, or a CSV column."""

from __future__ import annotations

import csv
import hashlib
import io

from tagger.errors import UsageError

__all__ = ["read_urls", "url_key", "REMOTE_PREFIX"]

#: Jobs for remote images carry this prefix instead of a content hash.
REMOTE_PREFIX = "url:"


def url_key(url: str) -> str:
    """The identity a remote image has in the ledger (it has no local content)."""
    return REMOTE_PREFIX + hashlib.sha256(url.encode("utf-8")).hexdigest()


def _is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def read_urls(path: str) -> list[str]:
    """URLs from ``path``: a plain list (``#`` comments allowed) or a CSV with a ``url`` column."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read the URL list {path}: {exc.strerror}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    if all(_is_url(line) and "," not in line for line in lines):
        urls = lines
    else:
        rows = list(csv.reader(io.StringIO("\n".join(lines))))
        header = [h.strip().lower() for h in rows[0]]
        column: int | None
        if "url" in header:
            column, body = header.index("url"), rows[1:]
        else:
            column = next((i for i, cell in enumerate(rows[0]) if _is_url(cell.strip())), None)
            body = rows
            if column is None:
                raise UsageError(f"{path}: no 'url' column and no column of http(s) URLs")
        urls = [row[column].strip() for row in body if len(row) > column and row[column].strip()]
    bad = [u for u in urls if not _is_url(u)]
    if bad:
        raise UsageError(f"{path}: not an http(s) URL: {bad[0]!r}")
    return list(dict.fromkeys(urls))
