"""Compare the folders on disk with the ledger and decide what each file needs.

Per folder: one ledger read, then (size, mtime_ns) decide; only new or
changed files are hashed. Identity is the hash of the image data, so a file
whose metadata alone changed keeps its caption, and a moved or copied file
finds its caption in the ledger without a submission.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tagger.hashing import content_hash
from tagger.ledger import FileState, Ledger, under_roots
from tagger.scanner import Folder, scan

__all__ = ["Plan", "plan"]

log = logging.getLogger("tagger.planner")


@dataclass
class Plan:
    """What a run found: counts of files by what they need."""

    new: int = 0
    changed: int = 0
    moved: int = 0
    copied: int = 0
    missing: int = 0
    unchanged: int = 0
    unreadable: int = 0
    credits: int = 0
    # Hashes of files that are new at their path but whose content the ledger knew.
    _known_new: dict[str, int] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, int]:
        """The counts, for printing and JSON."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def _hash(path: bytes) -> tuple[str | None, str | None]:
    try:
        return content_hash(os.fsdecode(path)), None
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"


def plan(
    ledger: Ledger,
    roots: Iterable[str],
    endpoint: str,
    *,
    dry_run: bool = False,
    hash_workers: int = 2,
    on_folder: Callable[[int], None] | None = None,
) -> Plan:
    """Bring the ledger up to date with ``roots`` (or only count, when ``dry_run``)."""
    result = Plan()
    visited: set[bytes] = set()
    broots = [os.path.abspath(os.fsencode(r)) for r in roots]
    new_hashes: set[str] = set()
    with ThreadPoolExecutor(max_workers=max(1, hash_workers), thread_name_prefix="hash") as pool:
        for folder in scan(broots):
            visited.add(folder.path)
            _plan_folder(ledger, folder, result, pool, dry_run, new_hashes)
            if on_folder:
                on_folder(len(folder.files))
    for root in broots:
        if not os.path.isdir(root):
            continue
        for directory in ledger.known_dirs(root):
            if directory not in visited and not os.path.isdir(directory):
                gone = ledger.query("SELECT count(*) FROM files WHERE dir = ? AND state != 'missing'", (directory,))[0][0]
                result.missing += gone
                if not dry_run:
                    ledger.mark_dir_missing(directory)
    _classify_known(ledger, result)
    result.credits = _credits(ledger, endpoint, new_hashes, broots, dry_run)
    return result


def _plan_folder(ledger: Ledger, folder: Folder, result: Plan, pool: ThreadPoolExecutor, dry_run: bool, new_hashes: set[str]) -> None:
    known = ledger.files_in(folder.path)
    to_hash: list[tuple[bytes, int, int, tuple | None]] = []
    revived: list[tuple] = []
    for name, size, mtime_ns in folder.files:
        row = known.pop(name, None)
        if row is not None and row[1] == size and row[2] == mtime_ns and row[3] is not None:
            result.unchanged += 1
            if row[4] == FileState.MISSING.value:
                revived.append((folder.path, name, folder.root, size, mtime_ns, row[3], FileState.ACTIVE.value, None))
            continue
        to_hash.append((name, size, mtime_ns, row))
    upserts = revived
    hashes = pool.map(_hash, [os.path.join(folder.path, n) for n, *_ in to_hash])
    for (name, size, mtime_ns, row), (digest, error) in zip(to_hash, hashes):
        if digest is None:
            result.unreadable += 1
            upserts.append((folder.path, name, folder.root, size, mtime_ns, None, FileState.FAILED.value, error))
            continue
        if row is None:
            if _content_known(ledger, digest):
                result._known_new[digest] = result._known_new.get(digest, 0) + 1
            else:
                result.new += 1
                new_hashes.add(digest)
        elif row[3] == digest:
            result.unchanged += 1  # metadata edited, pixels the same: keep the caption
        else:
            result.changed += 1
            if not _content_known(ledger, digest):
                new_hashes.add(digest)
        upserts.append((folder.path, name, folder.root, size, mtime_ns, digest, FileState.ACTIVE.value, None))
    gone = [name for name, row in known.items() if row[4] != FileState.MISSING.value]
    if folder.complete:
        result.missing += len(gone)
    if dry_run:
        return
    if upserts:
        ledger.upsert_files(upserts)
    if gone and folder.complete:
        ledger.mark_missing(folder.path, gone)


def _content_known(ledger: Ledger, digest: str) -> bool:
    return bool(ledger.query("SELECT 1 FROM files WHERE content_hash = ? LIMIT 1", (digest,)))


def _classify_known(ledger: Ledger, result: Plan) -> None:
    """Content the ledger knew at a new path: moved if its old file is gone, else copied."""
    for digest, count in result._known_new.items():
        gone = ledger.query("SELECT 1 FROM files WHERE content_hash = ? AND state = 'missing' LIMIT 1", (digest,))
        if gone:
            result.moved += count
        else:
            result.copied += count


def _credits(ledger: Ledger, endpoint: str, new_hashes: set[str], roots: list[bytes], dry_run: bool) -> int:
    """Submissions the run will need: content with no job at this endpoint, plus queued jobs."""
    if dry_run:
        unknown = {h for h in new_hashes if not ledger.query("SELECT 1 FROM jobs WHERE content_hash = ? AND endpoint = ?", (h, endpoint))}
        # Known files under the roots whose content has no job at this endpoint yet.
        where, params = under_roots(roots)
        rows = ledger.query(
            f"""SELECT DISTINCT f.content_hash FROM files f WHERE f.state = 'active' AND f.content_hash IS NOT NULL AND ({where})
                AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.content_hash = f.content_hash AND j.endpoint = ?)""",
            (*params, endpoint),
        )
        unknown.update(r[0] for r in rows)
        queued = ledger.query("SELECT count(*) FROM jobs WHERE endpoint = ? AND state IN ('queued', 'submitting')", (endpoint,))[0][0]
        return len(unknown) + queued
    ledger.link_jobs(endpoint, roots)
    return ledger.query("SELECT count(*) FROM jobs WHERE endpoint = ? AND state IN ('queued', 'submitting')", (endpoint,))[0][0]
