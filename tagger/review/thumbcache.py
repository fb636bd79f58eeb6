"""Thumbnails made once and kept on disk, by content: a photo shown again (or a copy of it) costs a file read."""

from __future__ import annotations

import os
import re
import threading

from tagger.atomic import atomic_write
from tagger.sheet.thumbs import thumbnail_jpeg

__all__ = ["ThumbCache", "default_cache_dir"]

_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def default_cache_dir(ledger_path: str) -> str:
    """Where a ledger's review thumbnails are kept: a folder beside it."""
    return ledger_path + ".thumbs"


class ThumbCache:
    """JPEG thumbnails of ``edge`` px under ``folder``, keyed by the ledger's content hash; safe from threads."""

    def __init__(self, folder: str, edge: int = 320) -> None:
        self.folder = folder
        self.edge = edge
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.made = 0  # thumbnails decoded and encoded (not read from the cache): tests count them

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, photo: str, content_hash: str | None) -> bytes | None:
        """The thumbnail of ``photo`` (made once per content), or None when it cannot be read."""
        if not content_hash:
            return thumbnail_jpeg(photo, self.edge)
        key = f"{_SAFE.sub('_', content_hash)}-{self.edge}"
        path = os.path.join(self.folder, key[:2], key + ".jpg")
        with self._lock(key):  # two requests for one photo make it once
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError:
                pass
            data = thumbnail_jpeg(photo, self.edge)
            if data is None:
                return None
            self.made += 1
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write(path, lambda f: f.write(data))
            except OSError:
                pass  # a cache that cannot be written only costs speed
            return data
