"""Compare the folders on disk with the ledger and decide what each file needs.

Per folder: one ledger read, then (size, mtime_ns) decide. In a real run
(``StreamingPlan``, in a thread of its own) new and changed files are not
hashed here: they are handed to the run's intake (``pipeline.intake``),
which hashes and prepares each from one read while the walk goes on; only
RAW files captioned from their JPEG are hashed here (they are never
prepared). ``plan()`` (the dry run's, and the tests') hashes every new or
changed file itself. Identity is the hash of the image data, so a file
whose metadata alone changed keeps its caption, and a moved or copied file
finds its caption in the ledger without a submission.

A run that finds nothing new writes nothing: no per-file updates; jobs are
linked folder by folder, only for files that lack one at this endpoint.
A dry run takes the same decisions, keeping what a real run would have
written (content seen, files gone, identities re-keyed) aside, in memory
and in temporary tables that never touch the ledger file, so it reports
the same plan.

Upgrading from scheme-1 hashes (before m007): a file whose size and mtime
are unchanged is hashed again under scheme 2 and its job re-keyed, at no
credit (a well-formed JPEG, hashed alike by both, is not even read past its
headers). A file that changed, or turns up at a new path, is also hashed
under scheme 1: when that matches what the ledger recorded, the old job is
re-keyed to it. Folders without scheme-1 rows are untouched by all this:
the ledger's partial index of such rows answers in one query per run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from tagger.errors import cannot_read
from tagger.ledger.planning import HASH_SCHEME, FileUpsert, FullRow, ToSend
from tagger.ledger.store import FileState, Ledger
from tagger.pipeline.excludes import Excludes
from tagger.pipeline.intake import Claimed, NewFile, Stream
from tagger.pipeline.scan import Folder, scan
from tagger.prepare.formats import RAW_EXTENSIONS
from tagger.prepare.hashing import carries_over, content_hash, legacy_hash

__all__ = ["Plan", "plan", "StreamingPlan", "raw_pairs"]

log = logging.getLogger("tagger.pipeline.plan")

_ACTIVE = FileState.ACTIVE.value


class Candidate(NamedTuple):
    """A file of a folder that is not simply done, with its ledger row (None: new here)."""

    name: bytes
    size: int
    mtime_ns: int
    row: FullRow | None


class Rekey(NamedTuple):
    """A file whose bytes are as recorded under an older hash scheme: its identity is computed again."""

    name: bytes
    size: int
    mtime_ns: int
    row: FullRow


_MISSING = FileState.MISSING.value


@dataclass
class Plan:
    """What a run found: counts of files by what they need."""

    new: int = 0
    changed: int = 0
    moved: int = 0  # at a new path, with the content of a file gone from its old one (counted here, not as missing)
    copied: int = 0
    missing: int = 0  # gone from disk, and not moved
    unchanged: int = 0
    unreadable: int = 0
    paired: int = 0  # RAW files beside a JPEG of the same name: captioned from it, no credit
    credits: int = 0
    similar: int = 0  # contents that would share a similar photo's caption (dry run; counted by decoding them)
    adopted: int = 0  # files whose caption was taken from their sidecar (a lost ledger): no credit
    excluded: int = 0  # folders and files left out by exclude patterns (a folder counts once)
    # Dry run: why the credits would be spent, reason -> credits ("new", "changed", "endpoint", "locale", "retry",
    # "queued", "url"); not one of the counts above.
    why: dict[str, int] = field(default_factory=dict, repr=False)
    known_failures: int = 0  # failed in an earlier run, unchanged since: not tried again, not counted as new trouble
    # Hashes of files that are new at their path but whose content the ledger knew.
    _known_new: dict[str, int] = field(default_factory=dict, repr=False)
    # Dry run: (content hash, a file holding it) of each submission counted in ``credits``, in claim order.
    _to_send: list[ToSend] = field(default_factory=list, repr=False)
    # A dry run's hashed files (dir, name, root, hash), for counting what their sidecars would let it adopt.
    _hashed: list[tuple[bytes, bytes, bytes, str]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, int]:
        """The counts, for printing and JSON."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "why"}


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
        return None, cannot_read(exc)


def _legacy(path: bytes) -> str | None:
    try:
        return legacy_hash(os.fsdecode(path))
    except OSError:
        return None  # unreadable now: the scheme-2 hash above was read, so this is a race; no old identity found


def _rehash(job: tuple[bytes, str]) -> tuple[str | None, str | None]:
    """The scheme-2 hash of an unchanged file recorded under scheme 1 (``old``): no read past the headers when they agree."""
    path, old = job
    try:
        if carries_over(os.fsdecode(path)):
            return old, None
        return content_hash(os.fsdecode(path)), None
    except OSError as exc:
        return None, cannot_read(exc)


def _split(
    folder: Folder, to_hash: list[Candidate], pairs: dict[bytes, bytes]
) -> tuple[list[Candidate], list[NewFile]]:
    """What the planner still hashes (RAW files captioned from their JPEG), and what it hands to the intake."""
    keep, streamed = [], []
    for entry in to_hash:
        name, size, mtime_ns, row = entry
        if name in pairs:
            keep.append(entry)
            continue
        streamed.append(
            NewFile(
                folder.path,
                name,
                folder.root,
                size,
                mtime_ns,
                known=row is not None and row.content_hash is not None,
                known_hash=row.content_hash if row is not None else None,
            )
        )
    return keep, streamed


class _Planner:
    """One planning pass: the ledger, the endpoint, and what this pass has decided so far."""

    def __init__(
        self,
        ledger: Ledger,
        endpoint: str,
        dry_run: bool,
        roots: list[bytes],
        stream: Stream | None = None,
        hasher: Callable[[bytes], tuple[str | None, str | None]] | None = None,
    ) -> None:
        self.ledger = ledger
        # (digest, None) or (None, reason) for a file; the dry run's reads file by file under the real run's limits.
        self.hasher = hasher or _hash
        self.endpoint = endpoint
        self.dry_run = dry_run
        self.roots = roots
        self.result = Plan()
        # Checking each file's job endpoint costs a join; skip it when the ledger knows one endpoint only.
        self.here: str | None = endpoint if ledger.planning.other_endpoints(endpoint) else None
        # Scheme-1 rows still to re-key: empty (one indexed query) once a run after the upgrade has seen them.
        self.old_dirs = ledger.planning.old_scheme_dirs(roots)
        self.has_old = bool(self.old_dirs) or ledger.planning.has_old_scheme()
        self.rekeyed: dict[str, str] = {}  # scheme-1 hash -> scheme-2 hash, found this pass
        self.rekeyed_to: set[str] = set()
        self.gone: Counter[str] = Counter()  # contents of files found gone this pass (as recorded)
        self.gone_unhashed = 0
        self.reactivated: Counter[str] = Counter()  # contents of missing files found back at their path
        # A real run hands new and changed files to its intake, which hashes and prepares them from one read.
        # (Not while scheme-1 rows remain: carrying their captions over needs both hashes here, once.)
        self.stream = stream if stream is not None and not dry_run and not self.has_old else None
        self.left: list[NewFile] = []  # files handed over after the dispatcher stopped taking them
        if dry_run:
            ledger.planning.dry_plan_begin()

    def close(self) -> None:
        """Drop what a dry run kept aside."""
        if self.dry_run:
            self.ledger.planning.dry_plan_end()

    # -- one folder ---------------------------------------------------------

    def folder(self, folder: Folder, pool: ThreadPoolExecutor) -> None:
        """Decide every file of one folder; write the folder's changes in one transaction."""
        if folder.path in self.old_dirs:
            self._differs(folder, list(folder.files), pool)
            return
        result = self.result
        # Found all done before, the same files on disk, nothing of it changed in the ledger since: done (one row read).
        listing = folder.listing()
        if listing is not None and self.ledger.planning.folder_marked(folder.path, self.endpoint, listing):
            result.unchanged += len(folder.files)
            return
        stamp = self.ledger.planning.folder_stamp() if listing is not None and not self.dry_run else None
        lean = {r[0]: r for r in self.ledger.planning.lean_rows(folder.path, self.here)}
        differs = []
        for entry in folder.files:
            row = lean.pop(entry[0], None)
            if row is not None and row[3] == 1 and row[1] == entry[1] and row[2] == entry[2]:
                continue
            differs.append(entry)
        result.unchanged += len(folder.files) - len(differs)
        if differs or (folder.complete and any(row[3] != 2 for row in lean.values())):
            self._differs(folder, differs, pool)
        elif stamp is not None and listing is not None:
            self.ledger.planning.mark_folder(folder.path, self.endpoint, listing, stamp)

    def _differs(self, folder: Folder, differs: list[tuple[bytes, int, int]], pool: ThreadPoolExecutor) -> None:
        """The files of a folder that are not simply done: new, changed, unhashed, unlinked, re-keyed or gone."""
        result = self.result
        known = {name: self._canon(row) for name, row in self.ledger.planning.full_rows(folder.path, self.here).items()}
        to_hash: list[Candidate] = []
        to_rekey: list[Rekey] = []
        upserts: list[FileUpsert] = []
        unlinked: list[tuple[bytes, str]] = []
        pairs = raw_pairs(entry[0] for entry in folder.files)
        for name, size, mtime_ns in differs:
            row = known.get(name)
            if row is not None and row.size == size and row.mtime_ns == mtime_ns and row.content_hash is not None:
                if row.hash_scheme is None:
                    to_rekey.append(Rekey(name, size, mtime_ns, row))
                    continue
                self._unchanged(folder, name, size, mtime_ns, row, row.content_hash, upserts, unlinked)
                continue
            to_hash.append(Candidate(name, size, mtime_ns, row))
        path = lambda name: os.path.join(folder.path, name)  # noqa: E731
        if to_rekey:
            rehashed = list(pool.map(_rehash, [(path(t.name), t.row.content_hash) for t in to_rekey]))
            self._rekey(
                [
                    (t.row.content_hash, digest)
                    for t, (digest, _) in zip(to_rekey, rehashed, strict=True)
                    if digest and t.row.content_hash
                ]
            )
            for (name, size, mtime_ns, row), (digest, error) in zip(to_rekey, rehashed, strict=True):
                if digest is None:
                    # Left as it is (scheme 1, its caption kept) and tried again next run.
                    result.unreadable += 1
                    log.warning("%s: %s; its identity is re-keyed on a later run", os.fsdecode(path(name)), error)
                    continue
                self._unchanged(folder, name, size, mtime_ns, row, digest, upserts, unlinked)
            # A twin of a file just re-keyed had the same bytes when recorded: it has the same new identity.
            to_hash = [c._replace(row=self._canon(c.row)) for c in to_hash]
        streamed: list[NewFile] = []
        if self.stream is not None:
            to_hash, streamed = _split(folder, to_hash, pairs)
        hashes = list(pool.map(self.hasher, [path(t.name) for t in to_hash])) if to_hash else []
        same = self._legacy_matches(folder, to_hash, hashes, pairs, pool)
        seen_here: set[str] = set()
        for (name, size, mtime_ns, row), (digest, error), kept in zip(to_hash, hashes, same, strict=True):
            if digest is None:
                result.unreadable += 1
                upserts.append(
                    FileUpsert(folder.path, name, folder.root, size, mtime_ns, None, FileState.FAILED.value, error)
                )
                continue
            unread = row is None or row.content_hash is None  # new here, or never read before (unreadable, not reached)
            if unread and name in pairs:
                result.paired += 1  # captioned from its JPEG: no submission of its own
            elif unread:
                if digest in seen_here or self._content_known(digest):
                    result._known_new[digest] = result._known_new.get(digest, 0) + 1
                else:
                    result.new += 1
            elif row is not None and (row.content_hash == digest or kept):  # not None: unread covers it
                result.unchanged += 1  # metadata edited, pixels the same: keep the caption
                if row.state == _MISSING:
                    self.reactivated[digest] += 1
            else:
                result.changed += 1
            if name not in pairs:
                seen_here.add(digest)
                if self.dry_run:
                    result._hashed.append((folder.path, name, folder.root, digest))
            unlinked.append((name, digest))
            upserts.append(FileUpsert(folder.path, name, folder.root, size, mtime_ns, digest, _ACTIVE, None))
        gone: list[FullRow] = []
        if folder.complete:
            present = {entry[0] for entry in folder.files}
            gone = [
                row for name, row in known.items() if row is not None and row.state != _MISSING and name not in present
            ]
        self._note_gone(row.content_hash for row in gone)
        own = [digest for name, digest in unlinked if name not in pairs]
        if streamed:  # RAW files whose JPEG the intake reads are linked once it has claimed its content
            raws_of: dict[bytes, list[bytes]] = {}
            for name, _ in unlinked:
                if name in pairs:
                    raws_of.setdefault(pairs[name], []).append(name)
            streamed = [replace(item, raws=tuple(raws_of.pop(item.name, ()))) for item in streamed]
            waiting = {raw for item in streamed for raw in item.raws}
            unlinked = [(name, digest) for name, digest in unlinked if name not in waiting]
        paired = [(name, pairs[name]) for name, _ in unlinked if name in pairs]
        if self.dry_run:
            self.ledger.planning.dry_note_seen(
                own, [os.path.join(folder.path, name) for name, _ in unlinked if name not in pairs]
            )
            self.ledger.planning.dry_note_gone([row.id for row in gone])
            return
        if upserts:
            self.ledger.files.upsert(upserts)
        if unlinked:
            self.ledger.files.link_folder(self.endpoint, folder.path, own, paired)
        if gone:
            self.ledger.files.mark_missing(folder.path, [row.name for row in gone])
        # Handed over only now: a RAW's row is written before its JPEG's claim links it.
        for item in streamed:
            if not self.stream.put(item):  # type: ignore[union-attr]
                self.left.append(item)

    def _unchanged(
        self,
        folder: Folder,
        name: bytes,
        size: int,
        mtime_ns: int,
        row: FullRow,
        digest: str,
        upserts: list[FileUpsert],
        unlinked: list[tuple[bytes, str]],
    ) -> None:
        """A file whose bytes are as recorded: active again if it was missing, linked if it lacks a job here."""
        self.result.unchanged += 1
        if row.state == _MISSING:
            upserts.append(FileUpsert(folder.path, name, folder.root, size, mtime_ns, digest, _ACTIVE, None))
            unlinked.append((name, digest))
            self.reactivated[digest] += 1
        elif row.state == _ACTIVE and not row.job_here:
            # (One with a job here keeps it: after a re-key, two files an older tagger captioned apart stay so.)
            unlinked.append((name, digest))

    def _legacy_matches(
        self,
        folder: Folder,
        to_hash: list[Candidate],
        hashes: list[tuple[str | None, str | None]],
        pairs: dict[bytes, bytes],
        pool: ThreadPoolExecutor,
    ) -> list[bool]:
        """Hash under scheme 1 what may carry a scheme-1 caption; re-key what matches.

        Returns, per file, whether its recorded scheme-1 hash is its scheme-1
        hash now (an edit the old scheme already ignored, made before the upgrade).
        """
        same = [False] * len(to_hash)
        if not self.has_old:
            return same
        wanted = []
        for i, ((name, _, _, row), (digest, _)) in enumerate(zip(to_hash, hashes, strict=True)):
            if digest is None or (row is None and name in pairs):
                continue
            if row is not None and row.content_hash is not None and row.hash_scheme is None:
                if row.content_hash != digest:
                    wanted.append(i)  # changed since it was recorded under scheme 1
            elif (row is None or row.content_hash is None) and not self._content_known(digest):
                wanted.append(i)  # new here, content unknown: maybe recorded elsewhere under scheme 1
        if not wanted:
            return same
        legacy = pool.map(_legacy, [os.path.join(folder.path, to_hash[i].name) for i in wanted])
        found: list[tuple[str, str]] = []
        for i, old in zip(wanted, legacy, strict=True):
            row, digest = to_hash[i].row, hashes[i][0]
            assert digest is not None
            if old is None:
                continue
            if row is not None and row.content_hash is not None and row.hash_scheme is None:
                if row.content_hash == old:
                    same[i] = True
                    found.append((old, digest))
            elif old in self.rekeyed or self.ledger.planning.old_scheme_known(old):
                found.append((old, digest))
        self._rekey(found)
        return same

    # -- identities -----------------------------------------------------------

    def _rekey(self, pairs: list[tuple[str, str]]) -> None:
        pairs = [(old, new) for old, new in pairs if self.rekeyed.get(old) != new]
        if not pairs:
            return
        self.rekeyed.update(pairs)
        self.rekeyed_to.update(new for _, new in pairs)
        if self.dry_run:
            self.ledger.planning.dry_note_rekey(pairs)
        else:
            self.ledger.planning.rekey(pairs)

    def _canon(self, row: FullRow | None) -> FullRow | None:
        """A scheme-1 row as it reads once this pass's re-keying is written (a dry run writes none)."""
        if row is None or row.hash_scheme is not None or row.content_hash not in self.rekeyed:
            return row
        return row._replace(content_hash=self.rekeyed[row.content_hash], hash_scheme=HASH_SCHEME)

    def _content_known(self, digest: str) -> bool:
        if self.ledger.planning.content_known(digest):
            return True
        return self.dry_run and (digest in self.rekeyed_to or self.ledger.planning.dry_seen(digest))

    # -- after the walk -------------------------------------------------------

    def _note_gone(self, digests: Iterable[str | None]) -> None:
        for digest in digests:
            if digest is None:
                self.gone_unhashed += 1
            else:
                self.gone[digest] += 1

    def vanished(self, roots: list[bytes], visited: set[bytes]) -> None:
        """Folders the ledger knows under ``roots`` that are no longer on disk: their files are missing."""
        for root in roots:
            if not os.path.isdir(root):
                continue
            for directory in self.ledger.files.known_dirs(root):
                if directory in visited or os.path.isdir(directory):
                    continue
                rows = self.ledger.planning.live_in_dir(directory)
                if not rows:
                    continue
                self._note_gone(row[1] for row in rows)
                if self.dry_run:
                    self.ledger.planning.dry_note_gone([row[0] for row in rows])
                else:
                    self.ledger.files.mark_dir_missing(directory)

    def classify(self) -> None:
        """Moves, copies and deletions: content at a new path pairs up with a file gone from its old one."""
        result = self.result
        canon: Callable[[str], str] = lambda digest: self.rekeyed.get(digest, digest)  # noqa: E731
        gone: Counter[str] = Counter()
        for digest, count in self.gone.items():
            gone[canon(digest)] += count
        result.missing = self.gone_unhashed
        for digest, count in gone.items():
            moved = min(count, result._known_new.get(digest, 0))
            result.moved += moved
            result.missing += count - moved
        preimages: dict[str, list[str]] = {}
        for old, new in self.rekeyed.items():
            preimages.setdefault(new, []).append(old)
        for digest, count in result._known_new.items():
            count -= min(gone[digest], count)
            if not count:
                continue
            # Files gone in earlier runs, as the ledger will hold them once this pass is written.
            earlier = self.ledger.planning.missing_with([digest, *preimages.get(digest, [])])
            earlier -= self.reactivated[digest] if self.dry_run else gone[digest]
            moved = min(count, max(0, earlier))
            result.moved += moved
            result.copied += count - moved

    def credits(self) -> int:
        """Submissions the run will need: content with no job at this endpoint, plus jobs already queued."""
        if self.dry_run:
            self.result._to_send = self.ledger.planning.dry_to_send(self.endpoint, self.roots)
            return self.ledger.planning.dry_credits(self.endpoint, self.roots)
        return self.ledger.planning.queued_credits(self.endpoint, self.roots)


def _walk(
    planner: _Planner,
    roots: list[bytes],
    hash_workers: int,
    on_folder: Callable[[int], None] | None,
    excludes: Excludes | None = None,
) -> None:
    visited: set[bytes] = set()
    try:
        with ThreadPoolExecutor(max_workers=max(1, hash_workers), thread_name_prefix="hash") as pool:
            for folder in scan(roots, excludes):
                visited.add(folder.path)
                planner.folder(folder, pool)
                if on_folder:
                    on_folder(len(folder.files))
    finally:
        planner.result.excluded = excludes.left_out if excludes is not None else 0
    planner.vanished(roots, visited)


def plan(
    ledger: Ledger,
    roots: Iterable[str],
    endpoint: str,
    *,
    dry_run: bool = False,
    hash_workers: int = 2,
    on_folder: Callable[[int], None] | None = None,
    hasher: Callable[[bytes], tuple[str | None, str | None]] | None = None,
    excludes: Excludes | None = None,
) -> Plan:
    """Bring the ledger up to date with ``roots`` (or only count, when ``dry_run``), hashing every new file here.

    ``hasher``: how a file is read and hashed, ((digest, None) or (None, reason)); by default here, in this process.
    """
    broots = [os.path.abspath(os.fsencode(r)) for r in roots]
    planner = _Planner(ledger, endpoint, dry_run, broots, hasher=hasher)
    try:
        _walk(planner, broots, hash_workers, on_folder, excludes)
        planner.classify()
        planner.result.credits = planner.credits()
        if dry_run:  # keep, for counting adoptions, only content the real run would still have to send
            planner.result._hashed = [h for h in planner.result._hashed if ledger.planning.dry_unsent(h[3], endpoint)]
    finally:
        planner.close()
    return planner.result


class StreamingPlan:
    """A real run's planning, in a thread of its own: new and changed files go to ``stream`` as the walk finds them.

    ``start()`` it, let a dispatcher take from the stream, ``join()`` it
    (re-raises what stopped the walk), then ``finish()`` with what the intake
    decided: the same counts a dry run gives.
    """

    def __init__(
        self,
        ledger: Ledger,
        roots: Iterable[str],
        endpoint: str,
        stream: Stream,
        *,
        hash_workers: int = 2,
        on_folder: Callable[[int], None] | None = None,
        excludes: Excludes | None = None,
    ) -> None:
        self.roots = [os.path.abspath(os.fsencode(r)) for r in roots]
        self.stream = stream
        self._planner = _Planner(ledger, endpoint, False, self.roots, stream)
        self._args = (hash_workers, on_folder, excludes)
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plan", daemon=True)

    def start(self) -> StreamingPlan:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            _walk(self._planner, self.roots, *self._args)
        except BaseException as exc:  # handed to join(), in the run's thread
            self._error = exc
        finally:
            self._done.set()
            self.stream.close()

    @property
    def running(self) -> bool:
        """Whether the walk goes on."""
        return not self._done.is_set()

    @property
    def failed(self) -> bool:
        """Whether the walk was cut short (a stop, an error): what it did not reach is unknown to this run."""
        return self._done.is_set() and self._error is not None

    def wait(self) -> None:
        """Wait for the walk to end, without raising what ended it."""
        self._done.wait()

    def join(self) -> None:
        """Wait for the walk to end; re-raise what ended it early."""
        self._thread.join()
        if self._error is not None:
            raise self._error

    @property
    def left(self) -> list[NewFile]:
        """Files handed over after the dispatcher had stopped taking them."""
        return self._planner.left

    def preview(self, claimed: Claimed) -> Plan:
        """The plan ``finish`` would give now, on a copy (the walk is over; the run goes on)."""
        kept = self._planner.result
        self._planner.result = replace(kept, _known_new=dict(kept._known_new))
        try:
            return self.finish(claimed)
        finally:
            self._planner.result = kept

    def finish(self, claimed: Claimed) -> Plan:
        """The plan's counts, with the intake's decisions in."""
        result = self._planner.result
        result.new += claimed.new
        result.changed += claimed.changed
        result.unchanged += claimed.unchanged
        result.unreadable += claimed.unreadable
        for digest, count in claimed.known_new.items():
            result._known_new[digest] = result._known_new.get(digest, 0) + count
        self._planner.classify()
        return result
