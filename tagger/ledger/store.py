"""The job ledger: a SQLite file that is the truth about every file and job.

A *file* row is one path on disk; a *job* row is one submission of some
content to one endpoint in one locale (the ledger's ``locale``, the run's
``[service] locale``; endpoints and locales in the normal form of
``tagger.ledger.keys``). Files with the same content share a job, so
identical files cost one credit, and a moved file finds its caption again.
Every state change is one transaction; a token is committed the moment the
service hands it out (``synchronous=FULL``), so a crash never loses one.

Job states::

    queued -> submitting -> polling -> completed | skipped | timeout | not_found
      |           |            ^  |
      |           |            +--+ (repost)
      |           +-> queued (transient trouble; sent again by the next run)
      |           +-> held   (the answer was lost and resend_ambiguous is off)
      |           +-> failed (only for good: the service refused the request as invalid)
      +-> completed (shares a similar photo's caption, nothing sent)
      +-> waiting (its similar photo is in flight) -> completed | queued

A POST whose answer was lost after it may have reached the service (a read
timeout, a reset, a 5xx, a crash in mid-air) sets ``lost_answer``; the next
POST of that job that may reach the service counts one possible duplicate
(``possible_duplicates``). ``submitting`` without a token is the one state a
crash can leave ambiguous; ``sweep()`` puts such jobs back in the queue (or
holds them) at start-up, with ``lost_answer`` set.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from tagger.errors import LedgerError, LedgerLocked, LedgerWriteError
from tagger.ledger.disk import disk_trouble, write_error
from tagger.ledger.journal import TokenJournal
from tagger.ledger.keys import DEFAULT_LOCALE, normal_locale
from tagger.ledger.migrations import MIGRATIONS_TABLE, NAMES

if TYPE_CHECKING:
    import sqlite_utils
from tagger.ledger.planning import HASH_SCHEME, FileUpsert, PlanningQueries
from tagger.ledger.review import ReviewQueries
from tagger.ledger.roots import under_roots
from tagger.ledger.similarity import LENDER_FILE, SimilarQueries
from tagger.ledger.states import SETTLED_STATUS, FileState, Job, JobState, file_status
from tagger.ledger.writes import WriteQueries

__all__ = ["Ledger", "TokenHeld", "JobState", "FileState", "Job", "SETTLED_STATUS", "file_status", "under_roots"]


class TokenHeld(Exception):
    """The service handed a job a token another job already holds; nothing was recorded."""

    def __init__(self, job_id: int, holder: int) -> None:
        super().__init__(f"job {job_id}: its token is already job {holder}'s")
        self.job_id = job_id
        self.holder = holder


log = logging.getLogger("tagger.ledger")

# One credit more for a run (None: the latest run), in the token's own transaction.
_COUNT_CREDIT = (
    "UPDATE runs SET submitted = coalesce(submitted, 0) + 1 WHERE id = coalesce(?, (SELECT max(id) FROM runs))"
)
# Committing a token (the moment the service hands it out, and replaying one the journal kept).
_RECORD_TOKEN = """UPDATE jobs SET state = 'polling', token = ?, status = ?, attempts = attempts + 1, submitted_at = ?,
   last_error = NULL, possible_duplicates = possible_duplicates + lost_answer, lost_answer = 0 WHERE id = ?"""


def _lock_now(f: IO[bytes]) -> bool:
    """Take an exclusive lock on ``f`` without waiting; False when another process holds one."""
    if os.name == "nt":
        import portalocker  # Windows only: on POSIX, flock is all it would do, and its import costs every run

        try:
            portalocker.lock(f, portalocker.LOCK_EX | portalocker.LOCK_NB)
        except portalocker.LockException:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EWOULDBLOCK, or a file system that cannot lock: the run must not go on unlocked
        return False
    return True


class Ledger(PlanningQueries, SimilarQueries, WriteQueries, ReviewQueries):
    """One ledger file, opened by one run at a time; safe to use from threads.

    The statements of four concerns live beside it and are inherited: the
    planner's (``planning``), similar photos' (``similarity``), writing
    captions out (``writes``) and a person's review (``review``).
    """

    def __init__(self, path: str, *, clock: Callable[[], float] = time.time, locale: str = DEFAULT_LOCALE) -> None:
        # The resolved file: its lock and its journal are found however the ledger was reached (a symlink to
        # it, or to its folder, must not give a second run a second lock on the same database).
        self.path = path if path == ":memory:" else os.path.realpath(path)
        self._clock = clock
        #: The locale whose jobs this ledger object plans, sends and links (part of every job's key).
        self.locale = normal_locale(locale)
        self._scoped = False
        self._lock = threading.RLock()
        self._lock_file: IO[bytes] | None = None
        self._journal: TokenJournal | None = None
        self._run_id: int | None = None  # the run being recorded (start_run): each token counts its credit there
        #: Tokens answered while the ledger could not record them (also in the journal, when it could take them).
        self.unrecorded: list[dict[str, Any]] = []
        try:
            if self.path != ":memory:":
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        except (OSError, sqlite3.Error) as exc:
            self._check_writable(exc)
            raise LedgerError(f"cannot open the ledger {self.path}: {exc}") from exc
        self.conn = conn
        self._db: sqlite_utils.Database | None = None
        try:
            applied = self._applied()
            self._refuse_newer(applied)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            if set(NAMES) - applied:
                from tagger.ledger.migrations import MIGRATIONS  # sqlite-utils and the migrations: only to upgrade

                MIGRATIONS.apply(self.db)
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._check_writable(exc)
            raise LedgerError(f"{self.path} is not a usable tagger ledger: {exc}") from exc

    # -- opening, locking, schema ------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        """The connection as a ``sqlite_utils.Database`` (what migrations are applied with)."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def _applied(self) -> set[str]:
        """The names of the migrations recorded as applied (sqlite-utils' table, read directly)."""
        exists = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)
        ).fetchall()
        if not exists:
            return set()
        return {r[0] for r in self.conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = 'tagger'")}

    def _refuse_newer(self, applied: set[str]) -> None:
        """Refuse, before writing anything, a ledger whose schema this tagger does not know."""
        unknown = sorted(applied - set(NAMES))
        if unknown:
            raise LedgerError(
                f"the ledger {self.path} was written by a newer tagger (schema {unknown[-1]}); "
                "upgrade tagger to use it (it was left untouched)"
            )

    def acquire(self) -> None:
        """Take the run lock, or raise ``LedgerLocked`` naming the holder's PID.

        The lock is an OS file lock on ``<ledger>.lock`` (flock on POSIX,
        LockFileEx through portalocker on Windows), beside the resolved ledger
        file: the OS releases it when its holder dies, so a stale lock is
        simply taken over.
        """
        try:
            # Not through a link: the lock is tagger's own file beside the ledger.
            fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            self._check_writable(exc)
            raise LedgerError(f"cannot take the lock {self.path}.lock: {exc.strerror or exc}") from None
        f = open(fd, "r+b")
        if not _lock_now(f):
            try:
                f.seek(0)
                holder = f.read(32).decode("ascii", "replace").strip() or "unknown"
            except OSError:  # Windows: the holder's lock covers the bytes
                holder = "unknown"
            f.close()
            raise LedgerLocked(
                f"another tagger run (PID {holder}) is using the ledger {self.path}; wait for it to finish"
            ) from None
        self._lock_file = f
        try:
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()).encode())
            f.flush()
            # The journal's space is taken now, while there is some: a disk that fills up later can still
            # take the tokens of the uploads in the air.
            self._journal = TokenJournal(self.path + ".tokens")
        except OSError as exc:
            self._check_writable(exc)
            raise
        self._replay_tokens()

    def _check_writable(self, exc: BaseException) -> None:
        """Raise a ``LedgerWriteError`` (from ``exc``) when a failed write is the disk's or the setup's doing."""
        kind = disk_trouble(exc, self.path)
        if kind is not None:
            raise self.unwritable(kind) from exc

    def unwritable(self, kind: str) -> LedgerWriteError:
        """The error a run ends with when the ledger cannot be written (``kind``), counting the tokens kept."""
        kept = [r for r in self.unrecorded if r.get("kept")]
        error = write_error(kind, self.path, len(kept), self._journal.path if self._journal else None)
        lost = [r["token"] for r in self.unrecorded if not r.get("kept")]
        if lost:  # the journal could not take them either: the last place they can be read is this message
            error = LedgerWriteError(
                f"{error}; the service's token(s) {', '.join(lost)} could not be kept anywhere: "
                "`tagger status` will show their files pending, and the next run sends them again",
                kind,
            )
        return error

    def _replay_tokens(self) -> None:
        """Record the tokens an earlier run could only put in the journal, before anything else happens."""
        journal = self._journal
        if journal is None or not journal.records:
            return
        recorded = 0
        for r in journal.records:
            with self.transaction() as c:
                row = c.execute("SELECT content_hash, endpoint, token, state FROM jobs WHERE id = ?", (r.get("job"),))
                row = row.fetchone()
                if row is None or (row[0], row[1]) != (r.get("content"), r.get("endpoint")) or row[2] is not None:
                    continue  # recorded already (a replay cut off before the journal was cleared), or not this job
                if row[3] not in (JobState.SUBMITTING.value, JobState.QUEUED.value, JobState.HELD.value):
                    continue
                c.execute(_RECORD_TOKEN, (r.get("token"), r.get("status"), r.get("at"), r.get("job")))
                c.execute(_COUNT_CREDIT, (None,))  # the credit of the run that could not record it
                recorded += 1
        journal.clear()
        if recorded:
            log.warning(
                "%d token(s) the service answered while the ledger could not record them were recorded from %s; "
                "they are polled, not sent again",
                recorded,
                journal.path,
            )

    def close(self) -> None:
        """Close the database and release the run lock."""
        with self._lock:
            self.conn.close()
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialised across threads."""
        with self._lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._check_writable(exc)
                raise
            try:
                yield self.conn
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    self._check_writable(exc)
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()  # a failed COMMIT (a full disk) may leave the transaction open
                self._check_writable(exc)
                raise

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite rolled back already (it does after SQLITE_FULL in a COMMIT)

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        with self._lock:
            cur = self.conn.execute(sql, tuple(params))
            return cur.fetchall()

    def now(self) -> float:
        """The ledger's clock (wall time in seconds): the one its timestamps are taken with."""
        return self._clock()

    # -- runs -------------------------------------------------------------

    def sweep(self, *, hold: bool = False) -> int:
        """Settle what a crash left half-done; returns jobs put back in the queue (or held).

        A job left in ``submitting`` may or may not have reached the service;
        without a token there is nothing to poll, so it is sent again (its
        resend counts as a possible duplicate), or held when ``hold``.
        """
        with self.transaction() as c:
            cur = c.execute(
                # A POST cut off in mid-air is one more lost answer: when an earlier one was lost too, it may be a duplicate.
                """UPDATE jobs SET state = ?, possible_duplicates = possible_duplicates + lost_answer, lost_answer = 1,
                   last_error = 'interrupted while submitting' WHERE state = ? AND token IS NULL""",
                ((JobState.HELD if hold else JobState.QUEUED).value, JobState.SUBMITTING.value),
            )
            c.execute(
                "UPDATE jobs SET state = ? WHERE state = ? AND token IS NOT NULL",
                (JobState.POLLING.value, JobState.SUBMITTING.value),
            )
            c.execute("UPDATE runs SET finished_at = ?, exit_code = 3 WHERE finished_at IS NULL", (self._clock(),))
            return cur.rowcount

    def forget_tokens(self, endpoint: str) -> int:
        """Queue again the outstanding jobs of an endpoint whose tokens died with it (the in-process emulator)."""
        with self.transaction() as c:
            return c.execute(
                # Whatever that emulator was charged died with it too: a resend is no duplicate there.
                """UPDATE jobs SET state = 'queued', token = NULL, status = NULL, lost_answer = 0
                   WHERE endpoint = ? AND state IN ('polling', 'submitting')""",
                (endpoint,),
            ).rowcount

    def start_run(self, endpoint: str) -> int:
        """Record the start of a run."""
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (started_at, endpoint, pid, submitted) VALUES (?, ?, ?, 0)",
                (self._clock(), endpoint, os.getpid()),
            )
            assert cur.lastrowid is not None  # an INSERT sets it
            self._run_id = cur.lastrowid
            return cur.lastrowid

    def finish_run(self, run_id: int, exit_code: int, submitted: int, credit_balance: int | None = None) -> None:
        """Record how a run ended."""
        with self.transaction() as c:
            c.execute(
                # Each token already counted itself (record_token): a killed run's credits are counted too.
                """UPDATE runs SET finished_at = ?, exit_code = ?, submitted = max(coalesce(submitted, 0), ?),
                   credit_balance = ? WHERE id = ?""",
                (self._clock(), exit_code, submitted, credit_balance, run_id),
            )

    def last_balance(self, endpoint: str) -> int | None:
        """The credit balance the endpoint reported at the end of its latest run."""
        rows = self.query(
            "SELECT credit_balance FROM runs WHERE endpoint = ? AND credit_balance IS NOT NULL ORDER BY id DESC LIMIT 1",
            (endpoint,),
        )
        return rows[0][0] if rows else None

    # -- files ------------------------------------------------------------

    def files_in(self, directory: bytes) -> dict[bytes, tuple[int, int, int, str | None, str]]:
        """The ledger's files in one folder: name -> (id, size, mtime_ns, hash, state)."""
        rows = self.query("SELECT name, id, size, mtime_ns, content_hash, state FROM files WHERE dir = ?", (directory,))
        return {r[0]: (r[1], r[2], r[3], r[4], r[5]) for r in rows}

    def root_of(self, directory: bytes, name: bytes) -> bytes | None:
        """The run root the ledger last saw this file under (where a ``sidecar_dir`` mirror starts), None if unknown."""
        rows = self.query("SELECT root FROM files WHERE dir = ? AND name = ?", (directory, name))
        return rows[0][0] if rows else None

    def sidecar_written(self, directory: bytes, name: bytes) -> bytes | None:
        """Where this file's sidecar was last written (recorded after the rename), None if never."""
        rows = self.query("SELECT sidecar FROM files WHERE dir = ? AND name = ?", (directory, name))
        return rows[0][0] if rows and rows[0][0] else None

    def known_dirs(self, root: bytes) -> list[bytes]:
        """Folders at or under ``root`` that hold ledger rows (missing ones too), read from the (dir, name) index.

        One index probe per folder (each step seeks the next folder name), not a read of every file's entry.
        """
        root = root.rstrip(b"/") or b"/"
        prefix = root if root == b"/" else root + b"/"
        found = [root] if root != prefix and self.query("SELECT 1 FROM files WHERE dir = ? LIMIT 1", (root,)) else []
        # Every folder below root sorts in [root/, root0) in memcmp order ("0" follows "/"): see under_roots.
        return found + [
            r[0]
            for r in self.query(
                """WITH RECURSIVE d(dir) AS (
                 SELECT (SELECT min(dir) FROM files WHERE dir >= ?1 AND dir < ?2)
                 UNION ALL SELECT (SELECT min(dir) FROM files WHERE dir > d.dir AND dir < ?2) FROM d WHERE d.dir IS NOT NULL
               ) SELECT dir FROM d WHERE dir IS NOT NULL""",
                (prefix, prefix[:-1] + b"0"),
            )
        ]

    def upsert_files(self, rows: Sequence[FileUpsert | tuple[Any, ...]]) -> None:
        """Insert or update scanned files in bulk.

        Each row is a ``FileUpsert`` (dir, name, root, size, mtime_ns, content_hash, state, reason); the
        hashes are of the current identity scheme (``HASH_SCHEME``).
        """
        now = self._clock()
        with self.transaction() as c:
            c.executemany(
                f"""INSERT INTO files (dir, name, root, size, mtime_ns, content_hash, state, reason, first_seen, last_seen, hash_scheme)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CASE WHEN ?6 IS NULL THEN NULL ELSE {HASH_SCHEME} END)
                   ON CONFLICT (dir, name) DO UPDATE SET root = excluded.root, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, state = excluded.state,
                     reason = excluded.reason, last_seen = excluded.last_seen, hash_scheme = excluded.hash_scheme,
                     job_id = CASE WHEN files.content_hash IS excluded.content_hash THEN files.job_id ELSE NULL END""",
                [(*r, now, now) for r in rows],
            )

    def mark_missing(self, directory: bytes, names: Iterable[bytes]) -> int:
        """Mark files gone from disk as missing (they stay in the ledger)."""
        with self.transaction() as c:
            cur = c.executemany(
                "UPDATE files SET state = 'missing' WHERE dir = ? AND name = ? AND state != 'missing'",
                [(directory, n) for n in names],
            )
            return cur.rowcount

    def mark_dir_missing(self, directory: bytes) -> int:
        """Mark every file of a vanished folder as missing."""
        with self.transaction() as c:
            return c.execute(
                "UPDATE files SET state = 'missing' WHERE dir = ? AND state != 'missing'", (directory,)
            ).rowcount

    def link_folder(
        self, endpoint: str, directory: bytes, hashes: Iterable[str], pairs: Iterable[tuple[bytes, bytes]] = ()
    ) -> int:
        """Give the active files of one folder with these contents a job at ``endpoint``.

        Content the endpoint already has a job for (a copy, a move, a metadata
        edit) links to that job and costs nothing; returns jobs created.
        ``pairs`` are (RAW name, JPEG name): the RAW file shares the JPEG's
        job (one submission, both sidecars), or gets its own when the JPEG
        has none. Files elsewhere keep their own links: another endpoint's
        caption is never replaced by a run that did not look at them.
        """
        digests = sorted(set(hashes))
        pairs = list(pairs)
        if not digests and not pairs:
            return 0
        now = self._clock()
        link = """UPDATE files SET job_id = (SELECT id FROM jobs WHERE jobs.content_hash = files.content_hash
                  AND jobs.endpoint = ? AND jobs.locale = ?)
                  WHERE dir = ? AND state = 'active' AND content_hash IN (SELECT value FROM json_each(?))"""
        create = "INSERT OR IGNORE INTO jobs (content_hash, endpoint, locale, source, state, created_at) VALUES (?, ?, ?, NULL, 'queued', ?)"
        locale = self.locale
        with self.transaction() as c:
            before = c.total_changes
            c.executemany(create, [(d, endpoint, locale, now) for d in digests])
            created = c.total_changes - before
            c.execute(link, (endpoint, locale, directory, json.dumps(digests)))
            for raw, jpeg in pairs:
                row = c.execute(
                    "SELECT job_id FROM files WHERE dir = ? AND name = ? AND state = 'active'", (directory, jpeg)
                ).fetchone()
                if row and row[0] is not None:
                    c.execute("UPDATE files SET job_id = ? WHERE dir = ? AND name = ?", (row[0], directory, raw))
                    continue
                own = c.execute(
                    "SELECT content_hash FROM files WHERE dir = ? AND name = ?", (directory, raw)
                ).fetchone()
                if own and own[0]:
                    before = c.total_changes
                    c.execute(create, (own[0], endpoint, locale, now))
                    created += c.total_changes - before
                    c.execute(link, (endpoint, locale, directory, json.dumps([own[0]])))
            return created

    def claim_file(
        self, endpoint: str, directory: bytes, name: bytes, root: bytes, size: int, mtime_ns: int, digest: str
    ) -> tuple[int, int, bool]:
        """Record a file hashed by the run's intake and give it a job at ``endpoint``: (file id, job id, created).

        One transaction: the first file to claim a content creates its job
        (``created``: the caller sends it); any later file of that content,
        in this run or another, links to the same job and costs nothing. The
        file keeps its job when its content is as recorded (a metadata edit).
        """
        now = self._clock()
        with self.transaction() as c:
            c.execute(
                f"""INSERT INTO files (dir, name, root, size, mtime_ns, content_hash, state, reason, first_seen, last_seen, hash_scheme)
                   VALUES (?, ?, ?, ?, ?, ?, 'active', NULL, ?, ?, {HASH_SCHEME})
                   ON CONFLICT (dir, name) DO UPDATE SET root = excluded.root, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, content_hash = excluded.content_hash, state = 'active',
                     reason = NULL, last_seen = excluded.last_seen, hash_scheme = excluded.hash_scheme,
                     job_id = CASE WHEN files.content_hash IS excluded.content_hash THEN files.job_id ELSE NULL END""",
                (directory, name, root, size, mtime_ns, digest, now, now),
            )
            before = c.total_changes
            c.execute(
                "INSERT OR IGNORE INTO jobs (content_hash, endpoint, locale, source, state, created_at) VALUES (?, ?, ?, NULL, 'queued', ?)",
                (digest, endpoint, self.locale, now),
            )
            created = c.total_changes > before
            job_id = c.execute(
                "SELECT id FROM jobs WHERE content_hash = ? AND endpoint = ? AND locale = ?",
                (digest, endpoint, self.locale),
            ).fetchone()[0]
            file_id = c.execute("SELECT id FROM files WHERE dir = ? AND name = ?", (directory, name)).fetchone()[0]
            c.execute("UPDATE files SET job_id = ? WHERE id = ?", (job_id, file_id))
            return file_id, job_id, created

    def add_urls(self, urls: list[tuple[str, str]], endpoint: str) -> int:
        """Record remote images as (url, key) pairs, each with a job; returns jobs created."""
        now = self._clock()
        with self.transaction() as c:
            before = c.execute("SELECT count(*) FROM jobs").fetchone()[0]
            c.executemany(
                "INSERT OR IGNORE INTO jobs (content_hash, endpoint, locale, source, state, created_at) VALUES (?, ?, ?, ?, 'queued', ?)",
                [(key, endpoint, self.locale, url.encode("utf-8"), now) for url, key in urls],
            )
            c.executemany(
                """INSERT INTO remote (url, job_id, first_seen, last_seen)
                   VALUES (?, (SELECT id FROM jobs WHERE content_hash = ? AND endpoint = ? AND locale = ?), ?, ?)
                   ON CONFLICT (url) DO UPDATE SET job_id = excluded.job_id, last_seen = excluded.last_seen""",
                [(url, key, endpoint, self.locale, now, now) for url, key in urls],
            )
            return int(c.execute("SELECT count(*) FROM jobs").fetchone()[0] - before)

    # -- jobs -------------------------------------------------------------

    def set_scope(
        self, endpoint: str, roots: list[bytes], url_keys: Iterable[str] = (), exclude: Iterable[int] = ()
    ) -> int:
        """Send only the queued jobs of files under ``roots`` (and of these remote images); returns how many.

        A job an earlier run queued for another folder waits for a run over
        that folder. Polling is not scoped: a token already paid for is
        collected by whichever run comes next. Call after planning.
        ``exclude``: jobs the run is already sending (its intake claimed them).
        """
        where, params = under_roots(roots)
        keys = json.dumps(sorted(set(url_keys)))
        with self._lock:
            self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS run_scope (id INTEGER PRIMARY KEY)")
            self.conn.execute("DELETE FROM temp.run_scope")
            self.conn.execute(
                f"""INSERT OR IGNORE INTO temp.run_scope SELECT j.id FROM jobs j
                    WHERE j.endpoint = ? AND j.locale = ? AND j.state IN ('queued', 'submitting')
                    AND (EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id AND f.state = 'active' AND ({where}))
                         OR j.content_hash IN (SELECT value FROM json_each(?)))""",
                (endpoint, self.locale, *params, keys),
            )
            excluded = sorted(set(exclude))
            if excluded:
                self.conn.execute(
                    "DELETE FROM temp.run_scope WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(excluded),)
                )
            self._scoped = True
            return int(self.conn.execute("SELECT count(*) FROM temp.run_scope").fetchone()[0])

    def _in_scope(self, state: JobState) -> str:
        return " AND id IN (SELECT id FROM temp.run_scope)" if self._scoped and state is JobState.QUEUED else ""

    def outstanding(self, endpoint: str) -> bool:
        """Whether the endpoint has jobs of this run to send, tokens to poll, or copies waiting for a similar photo."""
        return bool(
            self.query("SELECT 1 FROM jobs WHERE endpoint = ? AND state IN ('polling', 'waiting') LIMIT 1", (endpoint,))
            or self.query(
                "SELECT 1 FROM jobs WHERE endpoint = ? AND locale = ? AND state IN ('queued', 'submitting')"
                + self._in_scope(JobState.QUEUED)
                + " LIMIT 1",
                (endpoint, self.locale),
            )
        )

    def jobs_in_state(self, endpoint: str, state: JobState, limit: int = 1000, after_id: int = 0) -> list[Job]:
        """Jobs of one endpoint in one state, in id order, a page at a time (queued ones: this locale and scope)."""
        locale = "" if state is JobState.POLLING else " AND locale = ?"
        rows = self.query(
            f"""SELECT id, content_hash, state, source, token, reposts, attempts, submitted_at, lost_answer FROM jobs
               WHERE endpoint = ?{locale} AND state = ? AND id > ?{self._in_scope(state)} ORDER BY id LIMIT ?""",
            (endpoint, *(() if state is JobState.POLLING else (self.locale,)), state.value, after_id, limit),
        )
        return [Job(r[0], r[1], JobState(r[2]), r[3], r[4], r[5], r[6], r[7], bool(r[8])) for r in rows]

    def sources_of(self, job_id: int) -> list[bytes]:
        """Active files holding this job's content (candidates to prepare from)."""
        rows = self.query("SELECT dir, name FROM files WHERE job_id = ? AND state = 'active' ORDER BY id", (job_id,))
        return [os.path.join(r[0], r[1]) for r in rows]

    def job_state(self, content_hash: str, endpoint: str) -> str | None:
        """The state of the job for this content at ``endpoint`` in this locale, or None when there is none."""
        rows = self.query(
            "SELECT state FROM jobs WHERE content_hash = ? AND endpoint = ? AND locale = ?",
            (content_hash, endpoint, self.locale),
        )
        return rows[0][0] if rows else None

    def begin_submit(self, job_id: int) -> None:
        """Mark a job as being submitted: committed before the POST leaves."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET state = 'submitting' WHERE id = ? AND state = 'queued'", (job_id,))

    def record_token(self, job_id: int, token: str, status: str | None) -> bool:
        """Commit the token the service just handed out; True when this POST counted as a possible duplicate.

        When the ledger cannot be written, the token goes to the journal (and
        ``unrecorded``) before the ``LedgerWriteError`` is raised: it is never lost.
        Raises ``TokenHeld`` (recording nothing) when another job holds that token already.
        """
        try:
            with self.transaction() as c:
                # Checked in the same transaction as the write: two threads handed one token cannot both record it.
                holder = c.execute("SELECT id FROM jobs WHERE token = ? AND id != ?", (token, job_id)).fetchone()
                if holder is not None:
                    raise TokenHeld(job_id, holder[0])
                lost = c.execute("SELECT lost_answer FROM jobs WHERE id = ?", (job_id,)).fetchone()
                c.execute(_RECORD_TOKEN, (token, status, self._clock(), job_id))
                c.execute(_COUNT_CREDIT, (self._run_id,))
                return bool(lost and lost[0])
        except LedgerWriteError as exc:
            self._keep_token(job_id, token, status)
            raise self.unwritable(exc.kind) from exc

    def _keep_token(self, job_id: int, token: str, status: str | None) -> None:
        """Keep an answered token the ledger could not take: in memory and, fsync'd, in the journal."""
        with self._lock:
            row = self.conn.execute("SELECT content_hash, endpoint FROM jobs WHERE id = ?", (job_id,)).fetchone()
        record = {
            "job": job_id,
            "content": row[0] if row else None,
            "endpoint": row[1] if row else None,
            "token": token,
            "status": status,
            "at": self._clock(),
        }
        try:
            if self._journal is not None:
                self._journal.keep(record)
                record["kept"] = True
        except OSError as exc:
            log.error("token %s could not be written to the token journal either: %s", token, exc)
        self.unrecorded.append(record)

    def answer_lost(self, job_id: int, error: str) -> bool:
        """A POST may have reached the service (and been charged) but its answer was lost.

        True when this POST counted as a possible duplicate (an earlier POST
        of the job had lost its answer too).
        """
        with self.transaction() as c:
            lost = c.execute("SELECT lost_answer FROM jobs WHERE id = ?", (job_id,)).fetchone()
            c.execute(
                "UPDATE jobs SET possible_duplicates = possible_duplicates + lost_answer, lost_answer = 1, last_error = ? WHERE id = ?",
                (error, job_id),
            )
            return bool(lost and lost[0])

    def note_error(self, job_id: int, error: str) -> None:
        """Why a job still waits (an invalid answer to a poll): shown by `status`, the job's state unchanged."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET last_error = ? WHERE id = ?", (error, job_id))

    def requeue(self, job_id: int, error: str) -> None:
        """Transient trouble (or no token to poll): back to the queue; the reason stays for `status`."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET state = 'queued', last_error = ? WHERE id = ?", (error, job_id))

    def hold(self, job_id: int, error: str) -> None:
        """The answer was lost and resending is off: keep the job for `tagger retry --ambiguous`."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET state = 'held', last_error = ? WHERE id = ?", (error, job_id))

    def fail(self, job_id: int, reason: str, *, maybe_charged: bool = False) -> None:
        """The job cannot succeed (unreadable content, refused as invalid).

        ``maybe_charged``: the service may have created the job, so sending
        it again (``tagger retry --failed``) counts as a possible duplicate.
        """
        with self.transaction() as c:
            c.execute(
                """UPDATE jobs SET state = 'failed', reason = ?, last_error = ?, settled_at = ?,
                   lost_answer = max(lost_answer, ?) WHERE id = ?""",
                (reason, reason, self._clock(), int(maybe_charged), job_id),
            )

    def count_poll(self, job_id: int, status: str) -> None:
        """Note one poll that found the job still working."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET polls = polls + 1, status = ? WHERE id = ?", (status, job_id))

    def record_repost(self, job_id: int, status: str, reason: str | None) -> None:
        """The job was re-queued at the service under the same token."""
        with self.transaction() as c:
            c.execute(
                "UPDATE jobs SET state = 'polling', reposts = reposts + 1, polls = polls + 1, status = ?, reason = ?, submitted_at = ? WHERE id = ?",
                (status, reason, self._clock(), job_id),
            )

    def settle(
        self,
        job_id: int,
        state: JobState,
        answer: dict[str, Any],
        latency: tuple[float, float] | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        """Record a job's final answer (and when it was last seen working, first seen done).

        ``reason`` overrides the answer's own (a timeout tagger decided: deadline passed, repost refused).
        """
        flags = answer.get("flags")
        categories = answer.get("categories")
        low, high = latency or (None, None)
        with self.transaction() as c:
            c.execute(
                """UPDATE jobs SET state = ?, status = ?, caption = ?, reason = ?, flags = ?, categories = ?,
                   polls = polls + 1, settled_at = ?, latency_low = ?, latency_high = ?,
                   keywords = NULL, keyword_paths = NULL, unmapped = NULL, keyword_rules = NULL WHERE id = ?""",
                (
                    state.value,
                    answer.get("status"),
                    answer.get("name"),
                    reason if reason is not None else answer.get("reason"),
                    json.dumps(list(flags)) if isinstance(flags, list) else None,
                    json.dumps([str(x) for x in categories]) if isinstance(categories, list) else None,
                    self._clock(),
                    low,
                    high,
                    job_id,
                ),
            )

    def latency_history(self, endpoint: str, limit: int = 500) -> list[tuple[float, float]]:
        """(last seen working, first seen done) of the endpoint's latest completed jobs, in seconds."""
        return [
            (r[0], r[1])
            for r in self.query(
                """SELECT latency_low, latency_high FROM jobs WHERE endpoint = ? AND state = 'completed'
                   AND latency_high IS NOT NULL ORDER BY settled_at DESC LIMIT ?""",
                (endpoint, limit),
            )
        ]

    def retry(
        self,
        endpoint: str,
        *,
        failed: bool,
        skipped: Iterable[str] = (),
        timeouts: bool = False,
        ambiguous: bool = False,
        roots: list[bytes] | None = None,
    ) -> int:
        """Put selected settled (or held) jobs (of this locale; of files under ``roots`` when given) back in the queue; returns how many."""
        clauses, params = [], []
        if ambiguous:
            clauses.append("state = 'held'")
        if failed:
            clauses.append("state = 'failed'")
        reasons = list(skipped)
        if reasons:
            clauses.append(f"(state = 'skipped' AND reason IN ({','.join('?' * len(reasons))}))")
            params += reasons
        if timeouts:
            clauses.append("state IN ('timeout', 'not_found')")
        if not clauses:
            return 0
        where, where_params = under_roots(roots) if roots is not None else ("1", [])
        scope = (
            f"AND id IN (SELECT job_id FROM files WHERE state = 'active' AND ({where}))" if roots is not None else ""
        )
        with self.transaction() as c:
            cur = c.execute(
                f"""UPDATE jobs SET state = 'queued', token = NULL, status = NULL, caption = NULL, reason = NULL,
                    reposts = 0, settled_at = NULL, keywords = NULL, keyword_paths = NULL, unmapped = NULL,
                    keyword_rules = NULL WHERE endpoint = ? AND locale = ? AND ({" OR ".join(clauses)}) {scope}""",
                (endpoint, self.locale, *params, *where_params),
            )
            n = cur.rowcount
            # Their files' sidecars are written again once the jobs settle anew.
            c.execute(
                "UPDATE files SET written_job = NULL WHERE job_id IN (SELECT id FROM jobs WHERE endpoint = ? AND locale = ? AND state = 'queued')",
                (endpoint, self.locale),
            )
            if failed:
                c.execute(
                    f"UPDATE files SET state = 'active', reason = NULL WHERE state = 'failed' AND ({where})",
                    where_params,
                )
            return n

    # -- tagger retry ---------------------------------------------------------

    def resume_token(self, job_id: int, status: str | None, *, reposted: bool) -> None:
        """A settled timeout the service still knows goes back to polling under its token (no credit).

        ``reposted``: the service re-queued it just now. Either way its deadline
        starts again and it gets a fresh allowance of reposts.
        """
        with self.transaction() as c:
            c.execute(
                """UPDATE jobs SET state = 'polling', status = ?, reason = NULL, settled_at = NULL, reposts = 0,
                   submitted_at = ?, last_error = ? WHERE id = ? AND state IN ('timeout', 'not_found')""",
                (status, self._clock(), "reposted by tagger retry" if reposted else None, job_id),
            )

    def job_ids_under(self, roots: list[bytes]) -> set[int]:
        """Ids of the jobs of active files under ``roots``."""
        where, params = under_roots(roots)
        return {
            r[0]
            for r in self.query(
                f"SELECT DISTINCT job_id FROM files WHERE state = 'active' AND job_id IS NOT NULL AND ({where})", params
            )
        }

    def resend(self, job_id: int) -> None:
        """A settled job whose token the service no longer knows: queued to be sent again (a credit)."""
        with self.transaction() as c:
            c.execute(
                """UPDATE jobs SET state = 'queued', token = NULL, status = NULL, caption = NULL, reason = NULL,
                   reposts = 0, settled_at = NULL, keywords = NULL, keyword_paths = NULL, unmapped = NULL,
                   keyword_rules = NULL WHERE id = ?""",
                (job_id,),
            )
            c.execute("UPDATE files SET written_job = NULL WHERE job_id = ?", (job_id,))

    def mark_file_failed(self, file_id: int, reason: str) -> None:
        """A file-level failure (unreadable)."""
        with self.transaction() as c:
            c.execute("UPDATE files SET state = 'failed', reason = ? WHERE id = ?", (reason, file_id))

    # -- reading out ----------------------------------------------------------

    def _job_in_locale(self, column: str) -> tuple[str, tuple[Any, ...]]:
        """The join target for exports: the job of ``column``'s content and endpoint in this ledger's locale."""
        if not self.query("SELECT 1 FROM jobs WHERE locale != ? LIMIT 1", (self.locale,)):
            return column, ()  # one locale only (the usual ledger): the file's own job, no lookup
        # The job's content, not the file's: a RAW file shares its JPEG's job.
        return (
            f"""(SELECT o.id FROM jobs cur JOIN jobs o ON o.content_hash = cur.content_hash AND o.endpoint = cur.endpoint
                 AND o.locale = ? WHERE cur.id = {column})""",
            (self.locale,),
        )

    def file_rows(self, *, include_missing: bool = False, endpoint: str | None = None) -> Iterator[sqlite3.Row]:
        """Every file with its job in this ledger's locale, for exports, streamed in path order.

        One row per file: a DAM imports one row per asset. A file not yet
        captioned in this locale has no job here (it shows as pending).
        """
        file_job, params = self._job_in_locale("f.job_id")
        remote_job, remote_params = self._job_in_locale("r.job_id")
        sql = f"""SELECT f.dir, f.name, f.root, f.size, f.mtime_ns, f.content_hash, f.state, f.reason,
                        j.state, j.token, j.endpoint, j.caption, j.reason, j.flags, j.categories,
                        j.submitted_at, j.settled_at, j.last_error, j.keywords, {LENDER_FILE}
                 FROM files f LEFT JOIN jobs j ON j.id = {file_job}"""
        if not include_missing:
            sql += " WHERE f.state != 'missing'"
        sql += " ORDER BY f.dir, f.name"
        remote = f"""SELECT NULL, r.url, NULL, NULL, NULL, NULL, 'active', NULL,
                           j.state, j.token, j.endpoint, j.caption, j.reason, j.flags, j.categories,
                           j.submitted_at, j.settled_at, j.last_error, j.keywords, {LENDER_FILE}
                    FROM remote r LEFT JOIN jobs j ON j.id = {remote_job} ORDER BY r.url"""
        # A separate connection streams without holding the writer lock.
        reader = sqlite3.connect(self.path, timeout=30)
        try:
            yield from reader.execute(sql, params)
            yield from reader.execute(remote, remote_params)
        finally:
            reader.close()

    def summary(self, roots: list[bytes] | None = None, *, remote: bool = True) -> dict[str, Any]:
        """Counts by status and by reason (of files under ``roots``, or all; and remote images)."""
        counts = {
            "total": 0,
            "completed": 0,
            "skipped": 0,
            "timeout": 0,
            "not found": 0,
            "failed": 0,
            "pending": 0,
            "missing": 0,
            "unwritten": 0,
        }
        reasons: dict[str, int] = {}
        # A completed file whose sidecar could not be written counts as "unwritten" (tried again every run).
        rows: list[Any] = self._file_statuses(roots)  # and sqlite3.Rows of the same shape
        if remote:
            rows += self.query(
                """SELECT 'active', j.state, j.reason, j.last_error, count(*) FROM remote r
                   LEFT JOIN jobs j ON j.id = r.job_id GROUP BY 2, 3, 4"""
            )
        held = 0
        for fstate, jstate, reason, last_error, n in rows:
            status = (
                "unwritten"
                if jstate == "unwritten" and fstate == FileState.ACTIVE.value
                else file_status(fstate, "completed" if jstate == "unwritten" else jstate)
            )
            if status == "missing":
                counts["missing"] += n
                continue
            counts["total"] += n
            counts[status] += n
            if status == "pending" and jstate == JobState.HELD.value:
                held += n
            if status in ("skipped", "failed", "timeout", "not found", "unwritten") and reason:
                key = f"{status}: {reason}"
                reasons[key] = reasons.get(key, 0) + n
            elif status == "pending" and last_error:
                # Why a file is still waiting (an outage, a lost answer): it is sent again, or held.
                key = f"{'held' if jstate == JobState.HELD.value else 'pending'}: {last_error}"
                reasons[key] = reasons.get(key, 0) + n
        runs = self.query("SELECT min(started_at), max(coalesce(finished_at, started_at)), sum(submitted) FROM runs")[0]
        # Read from the jobs_duplicates partial index (m014): usually empty.
        duplicates = self.query(
            "SELECT coalesce(sum(possible_duplicates), 0) FROM jobs INDEXED BY jobs_duplicates WHERE possible_duplicates != 0"
        )[0][0]
        return {
            **counts,
            "held": held,
            "reasons": reasons,
            "first_run": runs[0],
            "last_run": runs[1],
            "credits_used": runs[2] or 0,
            "possible_duplicates": duplicates,
        }

    def _file_statuses(self, roots: list[bytes] | None) -> list[tuple[str, str | None, str | None, str | None, int]]:
        """(file state, job state, reason, job's last error, count) of the files under ``roots`` (or all), grouped.

        Every run ends with this (the exit status needs it), so it avoids the
        per-file join and sort a plain GROUP BY costs, and reads no file's
        row when all is done: the files are counted in the (dir, name) index;
        those missing, failed or unlinked are read from the files_attention
        partial index; the files whose job is not completed are found from
        the jobs side (the jobs_state and files_job indexes), and the rest of
        the active, linked files are the completed ones. Foreign keys are on,
        so a linked file always has its job.
        """
        where, params = under_roots(roots) if roots else ("1", [])
        # The total from the (dir, name) index alone; the files needing attention from the small
        # files_attention partial index (m014), so the files' own rows are not read.
        ((total,),) = self.query(f"SELECT count(*) FROM files WHERE {where}", params)
        ((missing, unlinked, failed),) = self.query(
            f"""SELECT count(*) FILTER (WHERE state = 'missing'),
                       count(*) FILTER (WHERE state = 'active' AND job_id IS NULL),
                       json_group_array(id) FILTER (WHERE state = 'failed')
                FROM files INDEXED BY files_attention WHERE (state != 'active' OR job_id IS NULL) AND ({where})""",
            params,
        )
        rows: list[tuple[str, str | None, str | None, str | None, int]] = [
            ("missing", None, None, None, missing),
            ("active", None, None, None, unlinked),
        ]
        if json.loads(failed):
            rows += [
                tuple(r)
                for r in self.query(
                    """SELECT 'failed', j.state, coalesce(f.reason, j.reason), j.last_error, count(*) FROM files f
                   LEFT JOIN jobs j ON j.id = f.job_id WHERE f.id IN (SELECT value FROM json_each(?)) GROUP BY 2, 3, 4""",
                    (failed,),
                )
            ]
        unsettled = [state.value for state in JobState if state is not JobState.COMPLETED]
        rows += [
            tuple(r)
            for r in self.query(
                f"""SELECT 'active', j.state, coalesce(f.reason, j.reason), j.last_error, count(*) FROM jobs j
                CROSS JOIN files f ON f.job_id = j.id
                WHERE j.state IN ({",".join("?" * len(unsettled))}) AND f.state = 'active' AND ({where}) GROUP BY 2, 3, 4""",
                [*unsettled, *params],
            )
        ]
        # Completed, but the sidecar could not be written: read from the small files_unwritten partial index
        # (``+f.dir``: the roots filter the rows, they do not drive the query).
        unwritten_where, unwritten_params = under_roots(roots, "+f.dir") if roots else ("1", [])
        rows += [
            tuple(r)
            for r in self.query(
                f"""SELECT 'active', 'unwritten', f.sidecar_error, NULL, count(*) FROM files f INDEXED BY files_unwritten
                CROSS JOIN jobs j ON j.id = f.job_id
                WHERE f.state = 'active' AND f.written_job IS NOT f.job_id AND f.sidecar_error IS NOT NULL
                AND j.state = 'completed' AND ({unwritten_where}) GROUP BY 3""",
                unwritten_params,
            )
        ]
        # A completed file's reason and last error say nothing (only other statuses list them).
        rows.append(("active", JobState.COMPLETED.value, None, None, total - sum(r[4] for r in rows)))
        return [r for r in rows if r[4]]
