"""The emulator's memory between runs: its jobs, balance and charges in a small SQLite file.

The service keeps a job after the client that sent it is gone; so does an
emulator given a state file. Every change is committed before the answer
that reveals it goes out (a token a client holds is always on disk), in
one transaction each, so a killed process leaves the file whole. Times are
stored as wall-clock seconds: a job keeps settling while no emulator runs,
as it would at the service. No key or secret is ever stored.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._vision import Analysis

if TYPE_CHECKING:
    from ._state import Job

__all__ = ["StateFile", "StateFileBusy"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (token TEXT PRIMARY KEY, job TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS digests (digest BLOB PRIMARY KEY);
CREATE TABLE IF NOT EXISTS account (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class StateFileBusy(RuntimeError):
    """Another emulator holds this state file."""


class StateFile:
    """One emulator's state file, held (flock) while open; ``clock`` is the account's clock."""

    def __init__(self, path: str, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self._lock_fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise StateFileBusy(f"{path} is in use by another emulator") from None
        #: True when this open made the file: it knows no job of an earlier process.
        self.created = not os.path.exists(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        # WAL with synchronous=NORMAL: a commit survives the process being killed (not a power cut), without
        # an fsync per submission.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        os.chmod(path, 0o600)

    def close(self) -> None:
        """Close the file and let another emulator open it."""
        self._db.close()
        os.close(self._lock_fd)

    # Wall time <-> the account's clock (monotonic in a server, fake in tests).
    def _wall(self, t: float) -> float | None:
        return None if t == float("inf") else t - self._clock() + time.time()

    def _local(self, t: float | None) -> float:
        return float("inf") if t is None else t - time.time() + self._clock()

    # -- reading ------------------------------------------------------------

    def value(self, name: str) -> int | None:
        """An account number (credits, charged), None when never stored."""
        row = self._db.execute("SELECT value FROM account WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def jobs(self, job_type: type[Job]) -> dict[str, Job]:
        """Every job stored, its times in the account's clock."""
        out: dict[str, Job] = {}
        for token, text in self._db.execute("SELECT token, job FROM jobs"):
            d = json.loads(text)
            out[token] = job_type(
                token=token,
                url=d["url"],
                ttl=d["ttl"],
                analysis=Analysis(**d["analysis"]),
                queued_at=self._local(d["queued_at"]),
                settles_at=self._local(d["settles_at"]),
                outcome=d["outcome"],
                reason=d["reason"],
                working=d["working"],
            )
        return out

    def digests(self) -> set[bytes]:
        """The digests of every image ever submitted (to count duplicates across runs)."""
        return {bytes(row[0]) for row in self._db.execute("SELECT digest FROM digests")}

    # -- writing (each call one transaction) -----------------------------------

    def submitted(self, job: Job, digest: bytes, credits: int, charged: int) -> None:
        """Record a new job and what it cost."""
        with self._transaction() as db:
            self._put(db, job)
            db.execute("INSERT OR IGNORE INTO digests VALUES (?)", (digest,))
            db.executemany("INSERT OR REPLACE INTO account VALUES (?, ?)", (("credits", credits), ("charged", charged)))

    def requeued(self, job: Job) -> None:
        """Record a job's new attempt (a repost)."""
        with self._transaction() as db:
            self._put(db, job)

    def forgotten(self, token: str) -> None:
        """Drop a job."""
        with self._transaction() as db:
            db.execute("DELETE FROM jobs WHERE token = ?", (token,))

    def set_credits(self, credits: int) -> None:
        """Store the balance (a new file's starting credits)."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO account VALUES ('credits', ?)", (credits,))

    def _put(self, db: sqlite3.Connection, job: Job) -> None:
        a = job.analysis
        text = json.dumps(
            {
                "url": job.url,
                "ttl": job.ttl,
                "analysis": {"caption": a.caption, "skip_reason": a.skip_reason, "catalog_file": a.catalog_file},
                "queued_at": self._wall(job.queued_at),
                "settles_at": self._wall(job.settles_at),
                "outcome": job.outcome,
                "reason": job.reason,
                "working": job.working,
            }
        )
        db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?)", (job.token, text))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
