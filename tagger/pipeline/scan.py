"""Find candidate images under the folders given, one folder at a time.

Paths are handled as bytes, so names that are not valid UTF-8 survive.
Hidden files and folders are skipped. A symbolic link (to a folder or a
photo) is followed only when it stays inside the scanned roots, unless
``follow_links`` is set: tagger runs as root over folders other people
write to, and a link to a file only root may read must not have it sent
and its metadata copied into a sidecar anyone can read. Each folder is
walked once (a link back up the tree does not loop). Only one folder's
listing is held at a time, so memory does not grow with the tree.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagger.display import display
from tagger.prepare.formats import IMAGE_EXTENSIONS, SNIFF_BYTES, sniff

if TYPE_CHECKING:
    from tagger.pipeline.excludes import Excludes

__all__ = ["Folder", "scan", "NOT_IMAGES"]

log = logging.getLogger("tagger.pipeline.scan")

#: Extensions never worth opening to sniff: sidecars, our own outputs, video, documents.
NOT_IMAGES = frozenset(
    {
        ".xmp",
        ".txt",
        ".csv",
        ".json",
        ".jsonl",
        ".md",
        ".html",
        ".htm",
        ".pdf",
        ".db",
        ".sqlite",
        ".sqlite3",
        ".sqlite-wal",
        ".sqlite-shm",
        ".lock",
        ".log",
        ".toml",
        ".ini",
        ".py",
        ".mov",
        ".mp4",
        ".m4v",
        ".avi",
        ".mkv",
        ".mp3",
        ".wav",
        ".aae",
        ".thm",
        ".zip",
        ".tmp",
    }
)

#: Fewer files than this and a folder's ledger read costs no more than reading its mark.
MARK_MIN = 8

# The walk compares raw bytes: decoding every name costs more than the stat.
_IMAGE_EXT = frozenset(os.fsencode(e) for e in IMAGE_EXTENSIONS)
_NOT_IMAGE_EXT = frozenset(os.fsencode(e) for e in NOT_IMAGES)


@dataclass
class Folder:
    """The candidate files of one folder: (name, size, mtime_ns) each.

    ``complete`` is False when only some of the folder was asked for (a
    file given by name), so files not listed must not be taken as deleted.
    """

    path: bytes
    root: bytes
    files: list[tuple[bytes, int, int]] = field(default_factory=list)
    complete: bool = True

    def listing(self) -> bytes | None:
        """A digest of the files as listed (names, sizes, mtimes, in listing order), or None for a folder not worth marking.

        Equal digests mean equal listings (marshal's format 2 writes no
        back-references, so equal values give equal bytes, and it is decodable,
        so equal bytes mean equal values; BLAKE2b does not collide), which is
        what lets the planner trust a folder mark
        (``tagger.ledger.planning``). A listing that came in another order
        only misses its mark. Folders asked for in part, or with fewer than
        ``MARK_MIN`` files, are read as they are.
        """
        if not self.complete or len(self.files) < MARK_MIN:
            return None
        return hashlib.blake2b(marshal.dumps(self.files, 2), digest_size=16, person=b"tagger-listing1").digest()


def _extension(name: bytes) -> bytes:
    dot = name.rfind(b".")
    return name[dot:].lower() if dot > 0 else b""


def _sniffs_as_image(path: bytes, name: bytes) -> bool:
    """For names without an image extension: look at the first bytes."""
    if _extension(name) in _NOT_IMAGE_EXT:
        return False
    try:
        with open(path, "rb") as f:
            return sniff(f.read(SNIFF_BYTES)) is not None
    except OSError:
        return False


def _inside(path: bytes, real_roots: list[bytes]) -> bool:
    """True when ``path``, resolved, is one of ``real_roots`` or under one."""
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r if r.endswith(b"/") else r + b"/") for r in real_roots)


def scan(
    roots: Iterable[str | bytes], excludes: Excludes | None = None, *, follow_links: bool = False
) -> Iterator[Folder]:
    """Yield each folder under ``roots`` that was listed, with its candidate images (less what ``excludes`` leaves out).

    A root is taken as given (a root that is a link is followed: it was asked
    for); inside, a link that leads out of every root is skipped unless
    ``follow_links``.
    """
    broots = [os.path.abspath(os.fsencode(root)) for root in roots]
    real_roots = None if follow_links else [os.path.realpath(r) for r in broots]
    seen: set[tuple[int, int]] = set()
    for broot in broots:
        try:
            st = os.stat(broot)
        except OSError as exc:
            log.warning("cannot read %s: %s", display(broot), exc.strerror)
            continue
        if stat.S_ISREG(st.st_mode):
            folder, name = os.path.split(broot)
            yield Folder(folder, folder, [(name, st.st_size, st.st_mtime_ns)], complete=False)
            continue
        yield from _walk(broot, seen, real_roots, excludes)


def _walk(
    root: bytes, seen: set[tuple[int, int]], real_roots: list[bytes] | None, excludes: Excludes | None = None
) -> Iterator[Folder]:
    # Depth first with a stack of pending folders: only paths are held, never listings.
    stack = [root]
    image_ext = _IMAGE_EXT
    while stack:
        current = stack.pop()
        try:
            st = os.stat(current)
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        files: list[tuple[bytes, int, int]] = []
        subdirs: list[bytes] = []
        try:
            with os.scandir(current) as it:
                for entry in it:
                    name = entry.name
                    if name[:1] == b".":
                        continue
                    try:
                        if real_roots is not None and entry.is_symlink() and not _inside(entry.path, real_roots):
                            log.info(
                                "not followed: %s is a symbolic link out of the scanned folders", display(entry.path)
                            )
                            continue
                        if entry.is_dir():  # follows symlinks; `seen` stops loops
                            if excludes is None or not excludes.folder(root, entry.path):
                                subdirs.append(entry.path)
                            continue
                        if not entry.is_file():
                            continue
                        dot = name.rfind(b".")
                        if (dot <= 0 or name[dot:].lower() not in image_ext) and not _sniffs_as_image(entry.path, name):
                            continue
                        if excludes is not None and excludes.patterns and excludes.file(root, entry.path):
                            continue  # (the built-in patterns name folders only: no per-file match without the user's)
                        est = entry.stat()
                    except OSError:
                        continue
                    files.append((name, est.st_size, est.st_mtime_ns))
        except OSError as exc:
            log.warning("cannot list %s: %s", display(current), exc.strerror)
            continue
        yield Folder(current, root, files)
        stack.extend(sorted(subdirs, reverse=True))
