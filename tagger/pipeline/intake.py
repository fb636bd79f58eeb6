"""The first run streams: new files go from the walk to the workers, hashed and prepared from one read.

The planner hands each file it would have hashed (new at its path, or
changed) to a ``Stream`` and walks on. The dispatcher takes them as workers
free up: one worker reads the file once, hashes it, and asks ``Intake.claim``
what to do with that content before decoding anything. Under one lock the
claim records the file and its content in the ledger: the first file to
claim a content creates its job and is sent from the bytes already read; a
file whose content has a job at this endpoint (a copy, a move, a metadata
edit, a file a lost ledger's sidecar still captions) links to it, is not
decoded, and costs nothing.

A crash between two steps loses nothing: a file not yet claimed has no
ledger row (or its old one), so the next run streams it again; a claimed job
not yet sent is queued, and the next run sends it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from tagger.ledger.store import FileState, Job, JobState, Ledger

__all__ = ["NewFile", "Stream", "Intake", "Claimed", "WAIT"]

log = logging.getLogger("tagger.pipeline.intake")

#: ``Stream.take`` found nothing yet, but the walk goes on.
WAIT = object()


@dataclass(frozen=True)
class NewFile:
    """A file the planner did not hash: new at its path, or changed since it was recorded."""

    directory: bytes
    name: bytes
    root: bytes
    size: int
    mtime_ns: int
    known: bool = False  # the ledger has a row for this path
    known_hash: str | None = None  # ... and this content hash in it
    raws: tuple[bytes, ...] = ()  # RAW files beside it, same base name: they share its job

    @property
    def path(self) -> bytes:
        return os.path.join(self.directory, self.name)


class Stream:
    """A bounded hand-over of new files from the planner's thread to the dispatcher."""

    def __init__(self, maxsize: int = 256) -> None:
        self._items: deque[NewFile] = deque()
        self._cond = threading.Condition()
        self._maxsize = maxsize
        self._closed = False
        self._abandoned = False
        self.handed = 0  # files put so far

    def put(self, item: NewFile) -> bool:
        """Hand over one file (waiting while the stream is full); False once the dispatcher has stopped taking."""
        with self._cond:
            while len(self._items) >= self._maxsize and not self._abandoned:
                self._cond.wait(0.5)
            if self._abandoned:
                return False
            self._items.append(item)
            self.handed += 1
            self._cond.notify_all()
            return True

    def close(self) -> None:
        """The walk is over: nothing more will be put."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self) -> NewFile | object | None:
        """The next file, ``WAIT`` when none is ready yet, None when the walk is over and every file was taken."""
        with self._cond:
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return None if self._closed else WAIT

    def wait(self, timeout: float) -> None:
        """Block until a file is ready, the walk ends, or ``timeout`` passes."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)

    def wait_started(self) -> bool:
        """Block until the first file is handed over (True) or the walk ends without one (False)."""
        with self._cond:
            while not self._items and not self._closed and not self.handed:
                self._cond.wait(0.5)
            return bool(self.handed)

    def abandon(self) -> list[NewFile]:
        """The dispatcher stopped taking files: later puts are refused; returns the files never taken."""
        with self._cond:
            self._abandoned = True
            left = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return left


@dataclass
class Claimed:
    """What the intake decided, for the plan's counts (as a dry run counts them)."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    unreadable: int = 0
    adopted: int = 0  # files whose sidecar already held tagger's caption for their content
    to_send: int = 0  # jobs this run created to send
    known_new: Counter[str] = field(default_factory=Counter)  # new at their path, content known: moves and copies


class Intake:
    """Decide, under one lock, what each streamed file's content needs; record it in the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        endpoint: str,
        *,
        adopt: Callable[[int, int, NewFile, str], bool] | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.endpoint = endpoint
        self.adopt = adopt  # (job id, file id, file, hash) -> whether the new job was settled from its sidecar
        self.on_send = on_send or (lambda: None)  # one more job to send
        self.counts = Claimed()
        self.claimed: set[int] = set()  # jobs created here to send: the queue of earlier runs' jobs skips them
        self._lock = threading.Lock()

    def claim(self, item: NewFile, digest: str) -> tuple[Job | None, bool]:
        """Record ``item`` with its content: (the job to send it with, or None; whether it keeps its job as written).

        A file keeps its job when its content is as recorded (a metadata
        edit): its sidecar already holds the caption, nothing else is needed.
        """
        with self._lock:
            counts = self.counts
            kept = item.known and item.known_hash == digest
            if not item.known:
                if self.ledger.planning.content_known(digest):
                    counts.known_new[digest] += 1
                else:
                    counts.new += 1
            elif item.known_hash == digest:
                counts.unchanged += 1  # metadata edited, pixels the same: the caption is kept
            else:
                counts.changed += 1
            file_id, job_id, created = self.ledger.files.claim(
                self.endpoint, item.directory, item.name, item.root, item.size, item.mtime_ns, digest
            )
            self._pair(item)
            if not created:
                return None, kept
            if self.adopt is not None and self.adopt(job_id, file_id, item, digest):
                counts.adopted += 1
                return None, True  # its sidecar holds the caption: nothing to write
            counts.to_send += 1
            self.claimed.add(job_id)
            self.on_send()
            return Job(job_id, digest, JobState.QUEUED, None, None, 0, 0, None), False

    def unreadable(self, item: NewFile, reason: str) -> None:
        """The file could not be read or hashed: recorded with the reason (tried again next run); its RAW gets its own job."""
        with self._lock:
            self.counts.unreadable += 1
            self.ledger.files.upsert(
                [(item.directory, item.name, item.root, item.size, item.mtime_ns, None, FileState.FAILED.value, reason)]
            )
            self._pair(item)
        log.warning("%s: %s", os.fsdecode(item.path), reason)

    def left(self, items: list[NewFile]) -> None:
        """Files the run stopped before reading (counted as they were found); new ones recorded pending, unhashed.

        The next run reads them; a changed file keeps its old row (and caption) until then.
        """
        rows = [
            (i.directory, i.name, i.root, i.size, i.mtime_ns, None, FileState.ACTIVE.value, None)
            for i in items
            if not i.known
        ]
        with self._lock:
            self.counts.new += len(rows)
            self.counts.changed += len(items) - len(rows)
        if rows:
            self.ledger.files.upsert(rows)

    def _pair(self, item: NewFile) -> None:
        # After the JPEG's claim: its RAW files share its job (or get their own when it has none).
        if item.raws:
            self.ledger.files.link_folder(self.endpoint, item.directory, [], [(raw, item.name) for raw in item.raws])
