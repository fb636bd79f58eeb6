"""``tagger strip``'s side: which sidecars a PATH means (a folder, a sidecar, a photo), and a dry run of stripping one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

from tagger.sidecars.write import strip_sidecar

__all__ = ["sidecars_for", "preview_strip"]


def _is_sidecar(path: str) -> bool:
    return path.lower().endswith(".xmp")


def sidecars_for(paths: Iterable[str]) -> Iterator[str]:
    """Each sidecar ``paths`` name, once: the .xmp files under a folder, a sidecar itself, a photo's own sidecars."""
    seen: set[str] = set()
    for path in paths:
        for sidecar in _one(path):
            key = os.path.abspath(sidecar)
            if key not in seen:
                seen.add(key)
                yield sidecar


def _one(path: str) -> Iterator[str]:
    if os.path.isdir(path):
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield from (os.path.join(folder, name) for name in sorted(files) if _is_sidecar(name))
        return
    if _is_sidecar(path):
        yield path
        return
    # A photo: its sidecars beside it, in either naming (IMG_1.JPG.xmp, IMG_1.xmp).
    folder, name = os.path.split(path)
    for candidate in (os.path.join(folder, name + ".xmp"), os.path.join(folder, os.path.splitext(name)[0] + ".xmp")):
        if os.path.isfile(candidate):
            yield candidate


def preview_strip(sidecar: str) -> str:
    """What ``strip_sidecar`` would do to ``sidecar`` ("deleted", "updated", "unchanged", "absent"), touching nothing.

    The sidecar is copied into a private folder and stripped there: the
    outcome is the real code's, not a guess.
    """
    if not os.path.isfile(sidecar):
        return "absent"
    with tempfile.TemporaryDirectory(prefix="tagger-strip-") as scratch:
        copy = os.path.join(scratch, os.path.basename(sidecar))
        shutil.copyfile(sidecar, copy)
        return strip_sidecar(copy)
