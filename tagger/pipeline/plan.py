"""Compare the folders on disk with the ledger and decide what each file needs.

Per folder: one ledger read, then (size, mtime_ns) decide; only new or
changed files are hashed. Identity is the hash of the image data, so a file
whose metadata alone changed keeps its caption, and a moved or copied file
finds its caption in the ledger without a submission.

A run that finds nothing new writes nothing: no per-file updates; jobs are
linked folder by folder, only for files that lack one at this endpoint.
A dry run takes the same decisions, keeping what a real run would have
written (content seen, files gone) in temporary tables that never touch the
ledger file, so it reports the same plan.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tagger.prepare.formats import RAW_EXTENSIONS
from tagger.prepare.hashing import content_hash
from tagger.ledger.store import FileState, Ledger
from tagger.pipeline.scan import Folder, scan

__all__ = ["Plan", "plan"]

log = logging.getLogger("tagger.pipeline.plan")

_ACTIVE = FileState.ACTIVE.value
_MISSING = FileState.MISSING.value

# A no-op run reads four narrow columns per file, the last one 1 for an active, hashed file whose job is
# for this endpoint (nothing to do), 2 for a file already known missing. Only folders where something
# differs are read again in full.
_LEAN = """SELECT name, size, mtime_ns, CASE WHEN state = 'missing' THEN 2
           WHEN state = 'active' AND content_hash IS NOT NULL AND {job} THEN 1 ELSE 0 END FROM files f WHERE dir = ?"""
_FULL = "SELECT name, size, mtime_ns, content_hash, state, {job}, id FROM files f WHERE dir = ?"
_JOB_ANY = "job_id IS NOT NULL"
_JOB_HERE = "coalesce((SELECT j.endpoint = ? FROM jobs j WHERE j.id = f.job_id), 0)"


# Queued jobs that will cost a credit: a job whose files are all gone fails without a POST.
_QUEUED = """SELECT count(*) FROM jobs j WHERE j.endpoint = ? AND j.state IN ('queued', 'submitting')
             AND (EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id AND f.state = 'active' {gone})
                  OR EXISTS (SELECT 1 FROM remote r WHERE r.job_id = j.id))"""


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
    paired: int = 0  # RAW files beside a JPEG of the same name: captioned from it, no credit
    credits: int = 0
    # Hashes of files that are new at their path but whose content the ledger knew.
    _known_new: dict[str, int] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, int]:
        """The counts, for printing and JSON."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


_JPEG = (b".jpg", b".jpeg")
_RAW = tuple(os.fsencode(ext) for ext in RAW_EXTENSIONS)


def raw_pairs(names: Iterable[bytes]) -> dict[bytes, bytes]:
    """RAW files with a JPEG of the same base name in the folder: RAW name -> JPEG name."""
    jpegs: dict[bytes, bytes] = {}
    raws: list[tuple[bytes, bytes]] = []
    for name in names:
        stem, ext = os.path.splitext(name)
        ext = ext.lower()
        if ext in _JPEG:
            jpegs.setdefault(stem.lower(), name)
        elif ext in _RAW:
            raws.append((stem.lower(), name))
    return {name: jpegs[stem] for stem, name in raws if stem in jpegs}


def _hash(path: bytes) -> tuple[str | None, str | None]:
    try:
        return content_hash(os.fsdecode(path)), None
    except OSError as exc:
        return None, f"cannot read the file: {exc.strerror or exc}"


class _Planner:
    """One planning pass: the ledger, the endpoint, and what this pass has decided so far."""

    def __init__(self, ledger: Ledger, endpoint: str, dry_run: bool) -> None:
        self.ledger = ledger
        self.endpoint = endpoint
        self.dry_run = dry_run
        self.result = Plan()
        # Checking each file's job endpoint costs a join; skip it when the ledger knows one endpoint only.
        other = ledger.query("SELECT 1 FROM jobs WHERE endpoint < ? OR endpoint > ? LIMIT 1", (endpoint, endpoint))
        job = _JOB_HERE if other else _JOB_ANY
        self.lean_sql, self.full_sql = _LEAN.format(job=job), _FULL.format(job=job)
        self.params: Callable[[bytes], tuple] = (lambda d: (endpoint, d)) if other else (lambda d: (d,))
        if dry_run:
            self.close()
            # Content a real run would have recorded, and files it would have marked missing (by row id).
            ledger.query("CREATE TEMP TABLE plan_seen (hash TEXT PRIMARY KEY) WITHOUT ROWID")
            ledger.query("CREATE TEMP TABLE plan_gone (id INTEGER PRIMARY KEY, hash TEXT)")
            ledger.query("CREATE INDEX temp.plan_gone_hash ON plan_gone (hash)")

    def close(self) -> None:
        """Drop what a dry run kept aside."""
        if self.dry_run:
            self.ledger.query("DROP TABLE IF EXISTS temp.plan_seen")
            self.ledger.query("DROP TABLE IF EXISTS temp.plan_gone")

    # -- one folder ---------------------------------------------------------

    def folder(self, folder: Folder, pool: ThreadPoolExecutor) -> None:
        """Decide every file of one folder; write the folder's changes in one transaction."""
        result = self.result
        lean = {r[0]: r for r in self.ledger.query(self.lean_sql, self.params(folder.path))}
        differs = []
        for entry in folder.files:
            row = lean.pop(entry[0], None)
            if row is not None and row[3] == 1 and row[1] == entry[1] and row[2] == entry[2]:
                continue
            differs.append(entry)
        result.unchanged += len(folder.files) - len(differs)
        if differs or (folder.complete and any(row[3] != 2 for row in lean.values())):
            self._differs(folder, differs, pool)

    def _differs(self, folder: Folder, differs: list[tuple[bytes, int, int]], pool: ThreadPoolExecutor) -> None:
        """The files of a folder that are not simply done: new, changed, unhashed, unlinked, or gone."""
        result = self.result
        known = {r[0]: r for r in self.ledger.query(self.full_sql, self.params(folder.path))}
        to_hash: list[tuple[bytes, int, int, tuple | None]] = []
        upserts: list[tuple] = []
        unlinked: list[tuple[bytes, str]] = []
        pairs = raw_pairs(entry[0] for entry in folder.files)
        for name, size, mtime_ns in differs:
            row = known.get(name)
            if row is not None and row[1] == size and row[2] == mtime_ns and row[3] is not None:
                result.unchanged += 1
                if row[4] == _MISSING:
                    upserts.append((folder.path, name, folder.root, size, mtime_ns, row[3], _ACTIVE, None))
                    unlinked.append((name, row[3]))
                elif row[4] == _ACTIVE:
                    unlinked.append((name, row[3]))
                continue
            to_hash.append((name, size, mtime_ns, row))
        seen_here: set[str] = set()
        hashes = pool.map(_hash, [os.path.join(folder.path, t[0]) for t in to_hash]) if to_hash else ()
        for (name, size, mtime_ns, row), (digest, error) in zip(to_hash, hashes):
            if digest is None:
                result.unreadable += 1
                upserts.append((folder.path, name, folder.root, size, mtime_ns, None, FileState.FAILED.value, error))
                continue
            if row is None and name in pairs:
                result.paired += 1  # captioned from its JPEG: no submission of its own
            elif row is None:
                if digest in seen_here or self._content_known(digest):
                    result._known_new[digest] = result._known_new.get(digest, 0) + 1
                else:
                    result.new += 1
            elif row[3] == digest:
                result.unchanged += 1  # metadata edited, pixels the same: keep the caption
            else:
                result.changed += 1
            if name not in pairs:
                seen_here.add(digest)
            unlinked.append((name, digest))
            upserts.append((folder.path, name, folder.root, size, mtime_ns, digest, _ACTIVE, None))
        gone: list[tuple[bytes, int, str | None]] = []
        if folder.complete:
            present = {entry[0] for entry in folder.files}
            gone = [(name, row[6], row[3]) for name, row in known.items() if row[4] != _MISSING and name not in present]
        result.missing += len(gone)
        own = [digest for name, digest in unlinked if name not in pairs]
        paired = [(name, pairs[name]) for name, _ in unlinked if name in pairs]
        if self.dry_run:
            if own:
                self.ledger.query("INSERT OR IGNORE INTO temp.plan_seen SELECT value FROM json_each(?)", (json.dumps(own),))
            if gone:
                self.ledger.query(
                    "INSERT OR IGNORE INTO temp.plan_gone SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)",
                    (json.dumps([[file_id, digest] for _, file_id, digest in gone]),),
                )
            return
        if upserts:
            self.ledger.upsert_files(upserts)
        if unlinked:
            self.ledger.link_folder(self.endpoint, folder.path, own, paired)
        if gone:
            self.ledger.mark_missing(folder.path, [name for name, _, _ in gone])

    def _content_known(self, digest: str) -> bool:
        if self.ledger.query("SELECT 1 FROM files WHERE content_hash = ? LIMIT 1", (digest,)):
            return True
        return self.dry_run and bool(self.ledger.query("SELECT 1 FROM temp.plan_seen WHERE hash = ?", (digest,)))

    # -- after the walk -------------------------------------------------------

    def vanished(self, roots: list[bytes], visited: set[bytes]) -> None:
        """Folders the ledger knows under ``roots`` that are no longer on disk: their files are missing."""
        for root in roots:
            if not os.path.isdir(root):
                continue
            for directory in self.ledger.known_dirs(root):
                if directory in visited or os.path.isdir(directory):
                    continue
                count = self.ledger.query("SELECT count(*) FROM files WHERE dir = ? AND state != 'missing'", (directory,))[0][0]
                if not count:
                    continue
                self.result.missing += count
                if self.dry_run:
                    self.ledger.query(
                        "INSERT OR IGNORE INTO temp.plan_gone SELECT id, content_hash FROM files WHERE dir = ? AND state != 'missing'",
                        (directory,),
                    )
                else:
                    self.ledger.mark_dir_missing(directory)

    def classify_known(self) -> None:
        """Content the ledger knew at a new path: moved if a file with it is gone, else copied."""
        result = self.result
        for digest, count in result._known_new.items():
            gone = self.ledger.query("SELECT 1 FROM files WHERE content_hash = ? AND state = 'missing' LIMIT 1", (digest,))
            if not gone and self.dry_run:
                gone = self.ledger.query("SELECT 1 FROM temp.plan_gone WHERE hash = ?", (digest,))
            if gone:
                result.moved += count
            else:
                result.copied += count

    def credits(self, roots: list[bytes]) -> int:
        """Submissions the run will need: content with no job at this endpoint, plus jobs already queued."""
        if not self.dry_run:
            return self.ledger.query(_QUEUED.format(gone=""), (self.endpoint,))[0][0]
        unknown = self.ledger.query(
            "SELECT count(*) FROM temp.plan_seen s WHERE NOT EXISTS "
            "(SELECT 1 FROM jobs j WHERE j.content_hash = s.hash AND j.endpoint = ?)",
            (self.endpoint,),
        )[0][0]
        # As the real run would see them: files found gone no longer count, content found here does.
        queued = self.ledger.query(
            _QUEUED.format(gone="AND f.id NOT IN (SELECT id FROM temp.plan_gone)")
            + " OR (j.endpoint = ? AND j.state IN ('queued', 'submitting') AND j.content_hash IN (SELECT hash FROM temp.plan_seen))",
            (self.endpoint, self.endpoint),
        )[0][0]
        return unknown + queued


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
    broots = [os.path.abspath(os.fsencode(r)) for r in roots]
    planner = _Planner(ledger, endpoint, dry_run)
    visited: set[bytes] = set()
    try:
        with ThreadPoolExecutor(max_workers=max(1, hash_workers), thread_name_prefix="hash") as pool:
            for folder in scan(broots):
                visited.add(folder.path)
                planner.folder(folder, pool)
                if on_folder:
                    on_folder(len(folder.files))
        planner.vanished(broots, visited)
        planner.classify_known()
        planner.result.credits = planner.credits(broots)
    finally:
        planner.close()
    return planner.result
