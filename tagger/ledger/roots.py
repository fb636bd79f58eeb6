"""Files under a run's roots, as one SQL condition (every statement that scopes by PATHs uses it)."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["under_roots"]


def under_roots(roots: list[bytes], column: str = "dir") -> tuple[str, list[Any]]:
    """A WHERE clause selecting files under any of ``roots``, served by the (dir, name) index.

    ``column`` names the folder column; ``+f.dir`` keeps SQLite from using
    that index (when a smaller partial index should drive the query). A
    root that is a file on disk (``tagger run PHOTO``) selects that file alone.
    """
    clauses, params = [], []
    for root in roots:
        if os.path.isfile(root):
            folder, name = os.path.split(os.path.abspath(root))
            clauses.append(f"({column} = ? AND {column.replace('dir', 'name')} = ?)")
            params += [folder, name]
            continue
        root = root.rstrip(b"/") or b"/"
        prefix = root if root == b"/" else root + b"/"
        # Bytes compare as memcmp: every folder below root sorts in [root/, root0) ("0" follows "/").
        clauses.append(f"({column} = ? OR ({column} >= ? AND {column} < ?))")
        params += [root, prefix, prefix[:-1] + b"0"]
    return " OR ".join(clauses) or "0", params
