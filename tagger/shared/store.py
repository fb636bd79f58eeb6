"""The PostgreSQL store: claims as leases, tokens, final answers, fingerprints and the files each machine reports.

A few connections (autocommit), each lent to one of the run's threads at
a time; a thread renews this owner's leases every third of a lease. The owner is one
machine's one ledger: a run that resumes after a crash finds its own claims
again at once, another machine only once their lease lapsed. When the
connection drops, every call raises ``StoreDown`` (reconnecting at most once
a second), and the caller sends nothing that needs a claim.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from tagger.prepare.fingerprint import ASPECT_TOLERANCE, Fingerprint, same_photo
from tagger.shared.base import Answer, Claim, FileRow, Lender, StoreDown, scrub

__all__ = ["PgStore", "SHARED_STATES"]

log = logging.getLogger("tagger.shared")

#: The final states another machine may link to (the service's own answers); others release the claim.
SHARED_STATES = ("completed", "skipped")
_RECONNECT_EVERY = 1.0

_KEY = "content_hash = %s AND scheme = %s AND endpoint = %s AND locale = %s"
_ANSWER = "job_state, status, caption, reason, flags, categories"


def _answer(row: tuple) -> Answer:
    state, status, caption, reason, flags, categories = row
    return Answer(
        state,
        status,
        caption,
        reason,
        tuple(flags) if flags is not None else None,
        tuple(categories) if categories is not None else None,
    )


class PgStore:
    """The shared store of one run: one endpoint and locale, one hash scheme, one owner."""

    enabled = True
    #: Connections per run (a machine): the claims of the preparing threads and the marks of the HTTP threads
    #: do not queue behind one another; few, because a server shared by many machines counts connections.
    pool_size = 4

    def __init__(
        self,
        url: str,
        conn: psycopg.Connection,
        *,
        owner: str,
        machine: str,
        endpoint: str,
        locale: str,
        scheme: int,
        lease: float = 30.0,
        connect: Callable[[], psycopg.Connection] | None = None,
        pool: int | None = None,
    ) -> None:
        self.url = url
        self.owner = owner
        self.machine = machine
        self.endpoint = endpoint
        self.locale = locale
        self.scheme = scheme
        self.lease = lease
        self.pool = (pool or self.pool_size) if connect is not None else 1
        self._spare: psycopg.Connection | None = conn
        self._connect = connect
        self._free = threading.Condition()
        self._idle: list[psycopg.Connection] = []
        self._open = 0  # connections open or being opened (idle or in use)
        self._closed = False
        self._last_try = 0.0
        self._down = False  # the store stopped answering and has not come back yet
        self._generation = 0  # counts the drops: a connection taken before the last one is not pooled again
        self.lost = False  # the store dropped at least once during this run
        self._closing = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name="shared-lease", daemon=True)
        self._renewer.start()

    # -- the connection -----------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[psycopg.Connection]:
        """A connection of the pool, this caller's alone until it is done; a dropped one becomes ``StoreDown``."""
        conn, generation = self._take()
        try:
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop(conn, generation)
            raise StoreDown(scrub(str(exc).strip(), self.url)) from None
        except BaseException:
            self._give(conn, generation)
            raise
        self._give(conn, generation)

    def _take(self) -> tuple[psycopg.Connection, int]:
        """An idle connection, a new one while fewer than ``pool`` are open, else wait for one; and its generation."""
        with self._free:
            while True:
                if self._closed:
                    raise StoreDown("the shared store was closed")
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.closed:
                        return conn, self._generation
                    self._open -= 1
                if self._open < self.pool:
                    break
                self._free.wait()
            if self._spare is not None:  # the connection open_store checked the schema on
                conn, self._spare = self._spare, None
                if not conn.closed:
                    self._open += 1
                    return conn, self._generation
            now = time.monotonic()
            if self._connect is None or self._down and now - self._last_try < _RECONNECT_EVERY:
                raise StoreDown("the shared store is unreachable")
            self._last_try = now
            self._open += 1  # counted while connecting (outside the lock): the pool never overshoots
            generation = self._generation
        try:
            conn = self._connect()
        except (psycopg.Error, OSError) as exc:
            with self._free:
                self._open -= 1
                self._free.notify()
            raise StoreDown(scrub(str(exc), self.url)) from None
        with self._free:
            if self._down:
                self._down = False
                log.warning("the shared store is back")
        return conn, generation

    def _give(self, conn: psycopg.Connection, generation: int) -> None:
        with self._free:
            # A connection that was out when the store dropped is not pooled again: the server may have ended its
            # session too, and its next user would take the store for lost once more.
            if self._closed or generation != self._generation:
                conn.close()
                self._open -= 1
            else:
                self._idle.append(conn)
            self._free.notify()

    def _drop(self, conn: psycopg.Connection, generation: int) -> None:
        """The store stopped answering: close this connection and the idle ones (they share its fate)."""
        with self._free:
            if generation != self._generation:  # out since before the last drop: the store is already known lost
                self._open -= 1
                self._free.notify()
                idle: list[psycopg.Connection] = []
            else:
                idle = self._drop_all()
        for c in (conn, *idle):
            try:
                c.close()
            except psycopg.Error:
                pass

    def _drop_all(self) -> list[psycopg.Connection]:
        """Under the lock: the store is down; the idle connections to close (every other one is of the past)."""
        if not self._down:
            log.warning("the shared store stopped answering; nothing is sent without a claim until it is back")
        self.lost = True
        self._down = True
        self._generation += 1
        self._last_try = time.monotonic()
        idle, self._idle = self._idle, []
        self._open -= 1 + len(idle)
        self._free.notify_all()
        return idle

    def _key(self, digest: str) -> tuple[str, int, str, str]:
        return (digest, self.scheme, self.endpoint, self.locale)

    # -- claims ---------------------------------------------------------------

    def claim(self, digest: str) -> Claim:
        """Create the content's claim row, take it over when its lease lapsed, or say who has it."""
        with self._db() as c:
            row = c.execute(
                """INSERT INTO tagger_contents (content_hash, scheme, endpoint, locale, state, owner, machine, lease_until)
                   VALUES (%s, %s, %s, %s, 'claimed', %s, %s, now() + make_interval(secs => %s))
                   ON CONFLICT DO NOTHING RETURNING 1""",
                (*self._key(digest), self.owner, self.machine, self.lease),
            ).fetchone()
            if row is not None:
                return Claim("mine")
            return self._take_or_read(c, digest)

    def _take_or_read(self, c: psycopg.Connection, digest: str) -> Claim:
        row = c.execute(
            f"""WITH old AS (SELECT owner FROM tagger_contents WHERE {_KEY} FOR UPDATE)
                UPDATE tagger_contents t SET owner = %s, machine = %s, lease_until = now() + make_interval(secs => %s)
                FROM old WHERE t.content_hash = %s AND t.scheme = %s AND t.endpoint = %s AND t.locale = %s
                AND t.state <> 'settled' AND (t.owner = %s OR t.owner IS NULL OR t.lease_until < now())
                RETURNING t.state, t.token, old.owner""",
            (*self._key(digest), self.owner, self.machine, self.lease, *self._key(digest), self.owner),
        ).fetchone()
        if row is not None:
            state, token, old = row
            if old != self.owner:
                log.info("took over the lapsed claim of %s from %s (%s)", digest[:16], old, state)
            if state == "polling" and token:
                return Claim("mine", token=token)
            return Claim("mine", lost=state == "sending" and old != self.owner)
        row = c.execute(f"SELECT state, {_ANSWER} FROM tagger_contents WHERE {_KEY}", self._key(digest)).fetchone()
        if row is not None and row[0] == "settled":
            return Claim("settled", answer=_answer(row[1:]))
        return Claim("elsewhere")

    def look(self, digests: list[str]) -> dict[str, Claim]:
        """What became of contents claimed elsewhere: settled, still held, or lapsed and now this owner's."""
        if not digests:
            return {}
        with self._db() as c:
            rows = c.execute(
                f"""SELECT content_hash, state, owner = %s OR owner IS NULL OR lease_until < now(), {_ANSWER}
                    FROM tagger_contents WHERE content_hash = ANY(%s) AND scheme = %s AND endpoint = %s AND locale = %s""",
                (self.owner, digests, self.scheme, self.endpoint, self.locale),
            ).fetchall()
            seen = {r[0]: r for r in rows}
            out: dict[str, Claim] = {}
            for digest in digests:
                row = seen.get(digest)
                if row is not None and row[1] == "settled":
                    out[digest] = Claim("settled", answer=_answer(row[3:]))
                elif row is None:
                    out[digest] = self.claim_locked(c, digest)  # released: claim it anew
                elif row[2]:
                    out[digest] = self._take_or_read(c, digest)
                else:
                    out[digest] = Claim("elsewhere")
            return out

    def claim_locked(self, c: psycopg.Connection, digest: str) -> Claim:
        row = c.execute(
            """INSERT INTO tagger_contents (content_hash, scheme, endpoint, locale, state, owner, machine, lease_until)
               VALUES (%s, %s, %s, %s, 'claimed', %s, %s, now() + make_interval(secs => %s))
               ON CONFLICT DO NOTHING RETURNING 1""",
            (*self._key(digest), self.owner, self.machine, self.lease),
        ).fetchone()
        return Claim("mine") if row is not None else self._take_or_read(c, digest)

    def sending(self, digest: str) -> bool:
        """Mark the POST about to leave; False when this owner no longer holds the claim (do not send)."""
        with self._db() as c:
            cur = c.execute(
                f"""UPDATE tagger_contents SET state = 'sending', lease_until = now() + make_interval(secs => %s)
                    WHERE {_KEY} AND owner = %s AND state <> 'settled'""",
                (self.lease, *self._key(digest), self.owner),
            )
            return cur.rowcount == 1

    def token(self, digest: str, token: str) -> None:
        """Record the service's token: a machine taking the claim over polls it instead of sending again."""
        with self._db() as c:
            c.execute(
                f"UPDATE tagger_contents SET state = 'polling', token = %s WHERE {_KEY} AND state <> 'settled'",
                (token, *self._key(digest)),
            )

    def tokens(self, items: list[tuple[str, str]]) -> int:
        """Tokens the store missed (it was down when the service answered): only into claims this owner holds.

        A claim another machine took over meanwhile is left alone: that machine sent the content again, and
        counted it as a possible duplicate.
        """
        if not items:
            return 0
        with self._db() as c:
            with c.transaction():
                cur = c.cursor()
                n = 0
                for digest, token in items:
                    cur.execute(
                        f"""UPDATE tagger_contents SET state = 'polling', token = %s
                            WHERE {_KEY} AND owner = %s AND state <> 'settled' AND token IS NULL""",
                        (token, *self._key(digest), self.owner),
                    )
                    n += cur.rowcount
                return n

    def settled(self, items: list[tuple[str, Answer]]) -> None:
        """Publish final answers; a state other machines should not link to releases the claim instead."""
        final = [(d, a) for d, a in items if a.state in SHARED_STATES]
        other = [d for d, a in items if a.state not in SHARED_STATES]
        with self._db() as c:
            with c.transaction():
                if final:
                    c.cursor().executemany(
                        """INSERT INTO tagger_contents (content_hash, scheme, endpoint, locale, state, machine,
                               job_state, status, caption, reason, flags, categories, settled_at, settled_by)
                           VALUES (%s, %s, %s, %s, 'settled', %s, %s, %s, %s, %s, %s, %s, now(), %s)
                           ON CONFLICT (content_hash, scheme, endpoint, locale) DO UPDATE SET state = 'settled',
                               owner = NULL, lease_until = NULL, job_state = excluded.job_state,
                               status = excluded.status, caption = excluded.caption, reason = excluded.reason,
                               flags = excluded.flags, categories = excluded.categories, settled_at = now(),
                               settled_by = excluded.settled_by, machine = excluded.machine
                           WHERE tagger_contents.state <> 'settled'
                              OR (tagger_contents.job_state <> 'completed' AND excluded.job_state = 'completed')""",
                        [
                            (
                                *self._key(d),
                                self.machine,
                                a.state,
                                a.status,
                                a.caption,
                                a.reason,
                                None if a.flags is None else json.dumps(list(a.flags)),
                                None if a.categories is None else json.dumps(list(a.categories)),
                                self.owner,
                            )
                            for d, a in final
                        ],
                    )
                if other:
                    c.execute(
                        """DELETE FROM tagger_contents WHERE content_hash = ANY(%s) AND scheme = %s AND endpoint = %s
                           AND locale = %s AND owner = %s AND state <> 'settled'""",
                        (other, self.scheme, self.endpoint, self.locale, self.owner),
                    )

    def release(self, digest: str) -> None:
        """Give up a claim nothing was sent for (a POST that may have left keeps it: its resend is counted)."""
        with self._db() as c:
            c.execute(
                f"DELETE FROM tagger_contents WHERE {_KEY} AND owner = %s AND state = 'claimed'",
                (*self._key(digest), self.owner),
            )

    # -- similar photos ---------------------------------------------------------

    def similar(self, digest: str, key: int, aspect: float, blob: bytes, probes: list[int]) -> Lender | None:
        """Record the fingerprint; the closest similar content of another machine (answered first), if any.

        One transaction under an advisory lock per endpoint and locale: of two
        similar photos fingerprinted at once on two machines, the second sees
        the first (and waits for it), as two on one machine do.
        """
        with self._db() as c:
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.endpoint}\n{self.locale}",))
                c.execute(
                    """INSERT INTO tagger_fingerprints (content_hash, scheme, key, aspect, print)
                       VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                    (digest, self.scheme, key, aspect, blob),
                )
                return self._closest(c, digest, aspect, blob, probes)

    def lender_elsewhere(self, digest: str, aspect: float, blob: bytes, probes: list[int]) -> Lender | None:
        """The closest similar content another machine answered or is sending; nothing recorded (a dry run)."""
        with self._db() as c:
            return self._closest(c, digest, aspect, blob, probes)

    def _closest(
        self, c: psycopg.Connection, digest: str, aspect: float, blob: bytes, probes: list[int]
    ) -> Lender | None:
        fp = Fingerprint.from_blob(blob, aspect)
        low, high = aspect * (1 - 1.5 * ASPECT_TOLERANCE), aspect * (1 + 1.5 * ASPECT_TOLERANCE)
        rows = c.execute(
            f"""SELECT f.content_hash, f.aspect, f.print, t.state, {", ".join("t." + x for x in _ANSWER.split(", "))}
                FROM tagger_fingerprints f JOIN tagger_contents t ON t.content_hash = f.content_hash
                  AND t.scheme = f.scheme AND t.endpoint = %s AND t.locale = %s
                WHERE f.key = ANY(%s) AND f.scheme = %s AND f.content_hash <> %s AND f.aspect BETWEEN %s AND %s
                  AND ((t.state = 'settled' AND t.job_state = 'completed')
                       OR (t.state <> 'settled' AND t.owner <> %s AND t.lease_until > now()))""",
            (self.endpoint, self.locale, probes, self.scheme, digest, low, high, self.owner),
        ).fetchall()
        best: tuple[tuple[bool, int], Lender] | None = None
        for other_hash, other_aspect, other_print, state, *answer in rows:
            other = Fingerprint.from_blob(bytes(other_print), other_aspect)
            if not same_photo(fp, other):
                continue
            done = state == "settled"
            rank = (not done, sum(abs(x - y) for x, y in zip(fp.detail, other.detail, strict=False)))
            if best is None or rank < best[0]:
                best = (rank, Lender(other_hash, _answer(tuple(answer)) if done else None))
        return None if best is None else best[1]

    def lenders(self, digests: list[str]) -> dict[str, Answer | None | bool]:
        """Of similar contents waited for: their answer once settled, False once they lend nothing, else None."""
        if not digests:
            return {}
        with self._db() as c:
            rows = c.execute(
                f"""SELECT content_hash, state, lease_until < now() OR owner IS NULL, {_ANSWER} FROM tagger_contents
                    WHERE content_hash = ANY(%s) AND scheme = %s AND endpoint = %s AND locale = %s""",
                (digests, self.scheme, self.endpoint, self.locale),
            ).fetchall()
        seen = {r[0]: r for r in rows}
        out: dict[str, Answer | None | bool] = {}
        for d in digests:
            row = seen.get(d)
            if row is None or row[2] and row[1] != "settled":
                out[d] = False  # released, or its owner died: this machine sends its own copy
            elif row[1] == "settled":
                out[d] = _answer(row[3:]) if row[3] == "completed" else False
            else:
                out[d] = None
        return out

    # -- the organisation's view -----------------------------------------------

    def known(self, digests: list[str]) -> set[str]:
        """Contents answered, or held by another live machine (a dry run counts them free)."""
        if not digests:
            return set()
        with self._db() as c:
            rows = c.execute(
                """SELECT content_hash FROM tagger_contents WHERE content_hash = ANY(%s) AND scheme = %s
                   AND endpoint = %s AND locale = %s AND ((state = 'settled' AND job_state = ANY(%s))
                   OR (state <> 'settled' AND owner <> %s AND lease_until > now()))""",
                (digests, self.scheme, self.endpoint, self.locale, list(SHARED_STATES), self.owner),
            ).fetchall()
        return {r[0] for r in rows}

    def publish_files(self, rows: list[FileRow]) -> None:
        """Report files (path as this machine sees it) with their status, caption and keywords."""
        if not rows:
            return
        with self._db() as c:
            with c.transaction():
                c.cursor().executemany(
                    """INSERT INTO tagger_files (owner, machine, path, content_hash, endpoint, locale, status, caption,
                           keywords, reported_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now())
                       ON CONFLICT (owner, path) DO UPDATE SET machine = excluded.machine,
                           content_hash = excluded.content_hash, endpoint = excluded.endpoint, locale = excluded.locale,
                           status = excluded.status, caption = excluded.caption, keywords = excluded.keywords,
                           reported_at = now()
                       WHERE (tagger_files.content_hash, tagger_files.status, tagger_files.caption, tagger_files.keywords)
                           IS DISTINCT FROM (excluded.content_hash, excluded.status, excluded.caption, excluded.keywords)""",
                    [
                        (
                            self.owner,
                            self.machine,
                            r.path,
                            r.content_hash,
                            self.endpoint,
                            self.locale,
                            r.status,
                            r.caption,
                            json.dumps(list(r.keywords)),
                        )
                        for r in rows
                    ],
                )

    def identity(self) -> str:
        """The database's name and the moment its schema was created: a store dropped and made again is another."""
        with self._db() as c:
            row = c.execute(
                """SELECT current_database() || ' ' || applied_at::text FROM tagger_shared_migrations
                   WHERE name = 's001_initial'"""
            ).fetchone()
        return hashlib.sha256(str(row[0] if row else "").encode()).hexdigest()[:16]

    def withdraw_files(self, paths: list[str]) -> None:
        """Remove files this owner reported and no longer has."""
        if not paths:
            return
        with self._db() as c:
            c.execute("DELETE FROM tagger_files WHERE owner = %s AND path = ANY(%s)", (self.owner, paths))

    def watermark(self) -> float:
        """Until when (the ledger's clock) this owner's settled answers are known to be published."""
        with self._db() as c:
            row = c.execute("SELECT published_until FROM tagger_machines WHERE owner = %s", (self.owner,)).fetchone()
        return float(row[0]) if row else 0.0

    def set_watermark(self, until: float) -> None:
        """Every answer this owner settled before ``until`` is published."""
        with self._db() as c:
            c.execute(
                """INSERT INTO tagger_machines (owner, machine, published_until) VALUES (%s, %s, %s)
                   ON CONFLICT (owner) DO UPDATE SET machine = excluded.machine,
                   published_until = greatest(tagger_machines.published_until, excluded.published_until),
                   last_seen = now()""",
                (self.owner, self.machine, until),
            )

    # -- leases ---------------------------------------------------------------

    def renew(self) -> int:
        """Extend every claim this owner holds; returns how many."""
        with self._db() as c:
            return c.execute(
                """UPDATE tagger_contents SET lease_until = now() + make_interval(secs => %s)
                   WHERE owner = %s AND state <> 'settled'""",
                (self.lease, self.owner),
            ).rowcount

    def _renew_loop(self) -> None:
        while not self._closing.wait(self.lease / 3):
            try:
                self.renew()
            except StoreDown:
                pass  # the calls of the run say so; the next tick tries again

    def close(self) -> None:
        """Stop renewing and close the connection (the claims left lapse, or this owner's next run finds them)."""
        self._closing.set()
        self._renewer.join(timeout=5)
        with self._free:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            if self._spare is not None:
                idle.append(self._spare)
                self._spare = None
            self._free.notify_all()
        for conn in idle:  # one still in use is closed when its caller gives it back
            conn.close()


def connection_kwargs() -> dict[str, Any]:
    """Connection settings: autocommit, a short connect timeout (an unreachable store fails fast)."""
    return {"autocommit": True, "connect_timeout": 5, "application_name": "tagger"}
