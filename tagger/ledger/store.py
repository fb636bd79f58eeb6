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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from tagger.errors import LedgerError, LedgerLocked, LedgerWriteError
from tagger.ledger.disk import disk_trouble, write_error
from tagger.ledger.files import FileQueries
from tagger.ledger.journal import TokenJournal
from tagger.ledger.keys import DEFAULT_LOCALE, normal_locale
from tagger.ledger.migrations import MIGRATIONS_TABLE, NAMES
from tagger.ledger.planning import PlanningQueries
from tagger.ledger.readout import ReadoutQueries
from tagger.ledger.review import ReviewQueries
from tagger.ledger.roots import under_roots
from tagger.ledger.similarity import SimilarQueries
from tagger.ledger.states import SETTLED_STATUS, FileState, Job, JobState, file_status
from tagger.ledger.writes import WriteQueries

if TYPE_CHECKING:
    import sqlite_utils

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


class Latency(NamedTuple):
    """How long one completed job took, bounded by what polling saw (seconds after its POST)."""

    low: float  # last seen working
    high: float  # first seen done


class Ledger:
    """One ledger file, opened by one run at a time; safe to use from threads.

    It holds the connection, the run lock, the transactions and the job life
    cycle (runs, sending, tokens, settling, retrying). The statements of six
    concerns are objects beside it, each given this ledger as its
    ``LedgerCore``: ``files`` (what a scan found), ``planning`` (the
    planner's), ``similar`` (similar photos), ``writes`` (writing captions
    out), ``reviews`` (a person's review) and ``readout`` (exports, status).
    """

    files: FileQueries
    planning: PlanningQueries
    similar: SimilarQueries
    writes: WriteQueries
    reviews: ReviewQueries
    readout: ReadoutQueries

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
        self.files = FileQueries(self)
        self.planning = PlanningQueries(self)
        self.similar = SimilarQueries(self)
        self.writes = WriteQueries(self)
        self.reviews = ReviewQueries(self)
        self.readout = ReadoutQueries(self)

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
    def transaction(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialised across threads.

        ``durable=False``: committed without waiting for the disk (``synchronous=NORMAL``), for a cache's
        writes only: WAL keeps the order of commits, so such a write is never kept while an earlier one is lost.
        """
        with self._lock:
            if not durable:
                self.conn.execute("PRAGMA synchronous=NORMAL")
            try:
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
            finally:
                if not durable:
                    self.conn.execute("PRAGMA synchronous=FULL")

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

    def write_stamp(self) -> tuple[int, int]:
        """Where the ledger's writes stand: (``PRAGMA data_version``, bumped by other connections' commits, this one's changes)."""
        with self._lock:
            return self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes

    @property
    def scoped(self) -> bool:
        """Whether this run sends only the queued jobs ``set_scope`` chose."""
        return self._scoped

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

    def latency_history(self, endpoint: str, limit: int = 500) -> list[Latency]:
        """How long the endpoint's latest completed jobs took."""
        return [
            Latency(r[0], r[1])
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
