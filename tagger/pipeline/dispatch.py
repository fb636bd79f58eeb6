"""Keep jobs in flight: prepare and submit queued jobs, poll tokens, settle.

One conductor (the calling thread) owns the poll schedule and the in-flight
count; worker threads do the slow parts (preparing an image, HTTP calls)
and commit each step to the ledger themselves, so a token is on disk the
moment the service answers.

A first run's new files arrive from the walk (``intake.Stream``) while it
goes on: each is read once in a worker, which hashes it, asks the intake to
claim its content, and prepares it only when this run is to send it. The
queue of jobs earlier runs left, and of those the walk linked, is opened
once the walk is over and every streamed file has been claimed.

Failures of an upload are sorted by what they may have cost. Surely not
received (no connection made, 429, 503 with Retry-After): retried freely.
Maybe received, answer lost (read timeout, reset, other 5xx): the service
may have created and charged the job, and no request can find its token,
so the upload is resent once (counted in the ledger as a possible
duplicate), or held for ``tagger retry --ambiguous`` when
``resend_ambiguous`` is off. Trouble that outlasts the retries puts the job
back in the queue for the next run; only the service refusing the request
as invalid fails it. Polls and reposts are free and always retried.

Answers are validated by the client (``cs.AnswerError``) and never believed
otherwise. A submission answered without a usable token, or with a token
another job already holds, was maybe charged and cannot be polled: the job
fails with that reason (``tagger retry --failed`` sends it again), never
resent in a loop. An invalid answer to a poll is the service's fault: the
token is kept and polled again, and a job whose answers are still invalid
at its deadline fails with the reason. Each is counted in
``Tally.invalid_answers``. A redirect is never followed: it stops the run
(exit status 3) with where it pointed, tokens kept and jobs queued.

Stopping (``stop`` set, e.g. by SIGINT/SIGTERM): no POST leaves after it,
preparations in progress are cut off (their jobs stay queued), answers of
POSTs already sent are awaited for at most ``stop_grace`` seconds and
recorded, tokens are left in the ledger for the next run to poll. Nothing is
marked failed because of a stop.

Every job ends: one with no final answer ``job_deadline`` seconds after its
last submission or repost is recorded ``timeout``, whatever the service
keeps answering.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from tagger.client import protocol as cs  # statuses and errors: the HTTP client is the caller's
from tagger.client.pacing import InFlightLimit, RateLimiter
from tagger.client.retry import RateGate, RetryAfterTooLong, RetryPolicy, call
from tagger.errors import LedgerWriteError
from tagger.ledger.store import Job, JobState, Ledger, TokenHeld
from tagger.pipeline.intake import WAIT, Intake, NewFile, Stream
from tagger.pipeline.latency import LatencyModel
from tagger.pipeline.schedule import Entry, Schedule
from tagger.pipeline.sharing import NOT_NOW, POLL, SETTLED, Decision, Sharing
from tagger.pipeline.sharing import SEND as SEND_IT
from tagger.pipeline.similar import Reuse
from tagger.pipeline.tally import INTERRUPTED, STOP_GRACE, Tally
from tagger.pipeline.threads import DaemonPool
from tagger.pipeline.urls import REMOTE_PREFIX
from tagger.prepare.embedded import remember
from tagger.prepare.normalise import KEEP, LINK, SEND, Cancelled, Prepared, PrepareError, Preparer

if TYPE_CHECKING:
    from tagger.client.cloudsight import API

__all__ = [
    "Dispatcher",
    "DispatchOptions",
    "Tally",
    "http_threads",
    "max_posts_in_flight",
    "DEADLINE_REASON",
    "INTERRUPTED",
    "REPOST_REFUSED",
    "STOP_GRACE",
]

log = logging.getLogger("tagger.pipeline.dispatch")

T = TypeVar("T")

WORKING = (cs.STATUS_NOT_COMPLETED, cs.STATUS_IN_PROGRESS)
# Polls per job the first-poll aim may spend. The model keeps a run to it (what a first run's
# probes overspend, the next jobs pay back), so at 6-12 s a run of 1,000 polls 1.8 times per
# image with a median detection delay of 0.9 s, and a run of 64 stays under 2 polls.
_POLL_BUDGET = 1.8
REPOST_ONCE = (cs.REASON_UNSURE, cs.REASON_CLOSE)
#: The reason recorded for a job the service never finished.
DEADLINE_REASON = "no final answer within job_deadline"
#: The reason recorded for a timed-out job whose repost the service refused.
REPOST_REFUSED = "the service refused to repost it"
# A Retry-After at least this long (seconds) is said, not obeyed in silence.
_LONG_PAUSE = 10.0
# The conductor looks at the stop event at least this often (seconds) while it waits.
_TICK = 0.2


class _Halted(Exception):
    """Raised inside a worker thread's wait or before a request once the run is stopping."""


def http_threads(max_in_flight: int) -> int:
    """Threads that send requests (submits, polls, reposts) for a given ``max_in_flight``."""
    return min(32, max(4, max_in_flight // 2))


def max_posts_in_flight(max_in_flight: int) -> int:
    """The most POSTs that can be in the air at one moment: what a crash can cost twice at most.

    Each submit holds one HTTP thread, and the conductor starts a submit only
    while fewer than ``max_in_flight`` jobs are out; the HTTP pool size
    (``max_in_flight + workers``) is not what bounds it.
    """
    return min(max_in_flight, http_threads(max_in_flight))


@dataclass(frozen=True)
class DispatchOptions:
    """Knobs of the dispatcher (from the config)."""

    endpoint: str
    params: dict
    max_in_flight: int = 32
    workers: int = 2
    timeout_reposts: int = 2
    first_poll_delay: float = 4.0
    poll_interval: float = 1.0
    max_poll_interval: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    stop_after_failures: int = 5
    max_credits: int | None = None
    requests_per_second: float | None = None
    resend_ambiguous: bool = True
    reuse_similar: bool = True
    job_deadline: float = 1800.0
    stop_grace: float = STOP_GRACE


@dataclass
class _Ready:
    job: Job
    prepared: Prepared | None  # None: a remote URL, nothing to prepare


@dataclass
class _Submitted:
    job: Job
    token: str
    at: float  # when the service answered: the job's latency counts from here


@dataclass
class _Settled:
    job_id: int
    state: JobState
    uploaded: bool = True  # False: settled before it was ever uploaded (the progress counts it as out of the queue)


@dataclass
class _Shared:
    job_id: int  # settled with a completed similar photo's answer, nothing sent


@dataclass
class _Again:
    entry: Entry
    reposted: bool = False


#: What one unit of work (preparing, submitting, polling a job) comes back with, for ``_handle``:
#: ready to send, sent (its token), settled, settled by a similar photo's answer, to ask again later,
#: what the shared store decided, or nothing more to do (None).
Outcome = _Ready | _Submitted | _Settled | _Shared | _Again | Decision | None


class Dispatcher:
    """Runs every queued and polling job of one endpoint to a settled state."""

    def __init__(
        self,
        api: API,
        ledger: Ledger,
        preparer: Preparer,
        options: DispatchOptions,
        *,
        on_settled: Callable[[int, JobState], None] | None = None,
        progress: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        stop: threading.Event | None = None,
        intake: Intake | None = None,
        stream: Stream | None = None,
        before_queued: Callable[[set[int]], bool] | None = None,
        sharing: Sharing | None = None,
    ) -> None:
        self.api = api
        self.ledger = ledger
        self.preparer = preparer
        self.options = options
        self.on_settled = on_settled or (lambda job_id, state: None)
        self.progress = progress or (lambda what, n: None)
        self.clock = clock
        # Set from outside (a signal handler) to stop gracefully; every wait of the run wakes on it.
        self._halt = stop or threading.Event()
        self._injected_sleep = sleep
        self.sleep = self._sleep
        self.gate = RateGate(clock, self._sleep)
        self.limiter = RateLimiter(options.requests_per_second, clock=clock, sleep=self._sleep)
        # Back off by 0.7 (as CUBIC does) and regain one slot per 4 successful requests: a job
        # takes seconds, so growing once per round would take minutes to refill the pipe.
        self.in_flight = InFlightLimit(options.max_in_flight, decrease=0.7, per=4, clock=clock)
        # The documented 6-12 s against the documented 4 s first poll: a config that shortens the
        # first poll (the emulator, a scaled benchmark) shortens the expected latency with it.
        prior = (
            (1.5 * options.first_poll_delay, 3.0 * options.first_poll_delay) if options.first_poll_delay > 0 else None
        )
        self.latency = LatencyModel(
            options.first_poll_delay,
            options.poll_interval,
            options.max_poll_interval,
            prior=prior,
            poll_budget=_POLL_BUDGET,
            budget_horizon=options.max_in_flight,
        )
        # Earlier runs' latencies aim the first polls of this one.
        for low, high in reversed(ledger.latency_history(options.endpoint)):
            self.latency.observe(low, high)
        self.schedule = Schedule()
        self._aimed_with = self.latency.version
        self.tally = Tally()
        self._failures = 0
        self._reserved = 0
        self._lock = threading.Lock()  # counters shared by the worker threads
        self._stop = threading.Event()
        self._stop_reason: str | None = None
        self._interrupted = False
        # The first failed ledger write: nothing more is sent (a token must have somewhere to go), the run ends with it.
        self._ledger_error: LedgerWriteError | None = None
        self._accepted = threading.Event()
        self.reuse = Reuse(ledger, options.endpoint, enabled=options.reuse_similar)
        self._again: deque[Job] = deque()  # waiters whose lender lent nothing: prepared and sent after all
        # A first run streams: new files come from the walk (``stream``), are read once and claimed (``intake``);
        # the queue of jobs left by earlier runs or linked by the walk is opened once the walk is over.
        self.intake = intake
        self.stream = stream
        self.before_queued = before_queued
        self._queue: Iterator[Job] | None = None
        # The shared store (``[shared] url``): claims before sending, answers of other machines.
        self.sharing = sharing

    def _sleep(self, seconds: float) -> None:
        """Sleep, or raise ``_Halted`` as soon as the run is stopping."""
        if self._injected_sleep is None:
            if self._halt.wait(seconds):
                raise _Halted
            return
        self._injected_sleep(seconds)
        if self._halt.is_set():
            raise _Halted

    # -- the conductor --------------------------------------------------------

    def run(self) -> Tally:
        """Settle everything; returns the tally (``stopped`` says why it ended early)."""
        opts = self.options
        self._resume_polling()
        shared, requeued = self.reuse.resume()
        # Jobs this run settles without sending them: the progress adds them to the "captioned" total.
        self.progress("owed", len(self.schedule) + len(shared))
        self._shared(shared, requeued, queued=False)
        prep = DaemonPool(opts.workers, thread_name_prefix="prepare")
        io_pool = DaemonPool(http_threads(opts.max_in_flight), thread_name_prefix="http")
        running: dict[Future, str] = {}
        ready: deque[_Ready] = deque()
        # Preparation runs ahead of the submissions, so a free slot never waits on a decode.
        ahead = max(4, opts.workers * 2)
        exhausted = False
        grace_until: float | None = None
        try:
            while True:
                if grace_until is None and self._halt.is_set():
                    grace_until = self._begin_stop()
                if self.sharing is not None and not self._interrupted:
                    for decision in self.sharing.look():
                        self._handle(decision)
                may_submit = not self._stop.is_set() and not self._credits_spent()
                kinds = list(running.values())
                waiting_for_walk = False
                while (
                    may_submit
                    and (self._again or not exhausted)
                    and kinds.count("prepare") + kinds.count("claim") + len(ready) < ahead
                ):
                    work = self._again.popleft() if self._again else self._next_work(kinds.count("claim"))
                    if work is WAIT:
                        waiting_for_walk = True
                        break
                    if work is None:
                        exhausted = True
                        break
                    kind = "claim" if isinstance(work, NewFile) else "prepare"
                    running[prep.submit(self._read_and_claim if kind == "claim" else self._prepare, work)] = kind
                    kinds.append(kind)
                in_flight = kinds.count("submit") + kinds.count("poll") + len(self.schedule)
                # One probe until the service has accepted a request: a refused key costs one call, not 32.
                limit = self.in_flight.limit if self._accepted.is_set() else 1
                while may_submit and ready and in_flight < limit:
                    running[io_pool.submit(self._submit_ready, ready.popleft())] = "submit"
                    in_flight += 1
                if self._interrupted or (self._stop.is_set() and self._stop_reason != "credits"):
                    # Unreachable service, refused key or a stop: leave tokens for the next run.
                    if "submit" not in running.values() or (
                        grace_until is not None and time.monotonic() >= grace_until
                    ):
                        break
                else:
                    for entry in self.schedule.pop_due(self.clock()):
                        running[io_pool.submit(self._poll, entry)] = "poll"
                waiting_elsewhere = self.sharing is not None and not self._interrupted and self.sharing.waiting
                if (
                    not running
                    and not len(self.schedule)
                    and not waiting_elsewhere
                    and (exhausted and not ready and not self._again or not may_submit)
                ):
                    break
                due = self.schedule.next_due()
                timeout = None if due is None else max(0.0, due - self.clock())
                if waiting_elsewhere:  # another machine's answer is looked for every tick
                    timeout = _TICK if timeout is None else min(timeout, _TICK)
                if not running:
                    if waiting_for_walk and self.stream is not None:
                        self.stream.wait(_TICK if timeout is None else min(timeout, _TICK))
                    elif timeout:
                        try:
                            self._sleep(timeout)
                        except _Halted:
                            pass
                    continue
                # Waits are sliced so a stop (set from a signal handler) is seen within _TICK.
                slice_ = _TICK if timeout is None else min(timeout, _TICK)
                done, _ = wait(list(running), timeout=slice_, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    try:
                        outcome = future.result()
                        if isinstance(outcome, _Ready):
                            ready.append(outcome)
                        else:
                            self._handle(outcome)
                    except LedgerWriteError as exc:
                        self._ledger_failed(exc)
                self._reaim()
        except KeyboardInterrupt:  # a library caller without a stop event: wake the workers, then wait for them
            self._stop_reason = INTERRUPTED
            self._stop.set()
            self._halt.set()
            raise
        finally:
            if self.sharing is not None:
                self.sharing.flush()
            # Let in-flight POSTs finish so their tokens reach the ledger; a stop waited up to stop_grace above
            # and leaves what is still running behind (the start-up sweep settles it).
            prep.shutdown(wait=not self._interrupted, cancel_futures=True)
            io_pool.shutdown(wait=not self._interrupted, cancel_futures=True)
        if self._ledger_error is not None:
            # Counted now: the tokens of the POSTs that were in the air went to the journal too.
            raise self.ledger.unwritable(self._ledger_error.kind) from self._ledger_error
        if self._interrupted:
            self.tally.stopped = INTERRUPTED
        elif self._stop_reason == "credits":
            self.tally.stopped = f"the --max-credits cap of {opts.max_credits} was reached; run again to go on"
        else:
            self.tally.stopped = self._stop_reason
        return self.tally

    def _begin_stop(self) -> float:
        """The stop event is set: no more POSTs, cut preparations off; returns when to stop waiting for answers."""
        self._interrupted = True
        self._stop.set()
        if self.preparer is not None:
            self.preparer.cancel()
        # Real time: the bound is on a real process exit, whatever clock the schedule runs on.
        return time.monotonic() + self.options.stop_grace

    def _ledger_failed(self, exc: LedgerWriteError) -> None:
        """A ledger write failed: no request leaves any more; the POSTs in the air are awaited (their tokens kept)."""
        if self._ledger_error is None:
            self._ledger_error = exc
        self._interrupted = True
        self._stop_reason = str(exc)
        self._stop.set()
        if self.preparer is not None:
            self.preparer.cancel()

    def _credits_spent(self) -> bool:
        cap = self.options.max_credits
        with self._lock:
            spent = cap is not None and self._reserved >= cap
        if spent:
            self._stop_reason = "credits"
        return spent

    def _reserve_credit(self) -> bool:
        """Take one credit of the --max-credits budget before a POST; False when none is left."""
        with self._lock:
            cap = self.options.max_credits
            if cap is not None and self._reserved >= cap:
                return False
            self._reserved += 1
            return True

    def _next_work(self, claiming: int) -> NewFile | Job | object | None:
        """A streamed file, else a queued job; ``WAIT`` while the walk may still hand files over; None when none is left.

        ``claiming``: streamed files being read and claimed now.
        """
        if self._queue is None:
            if self.stream is not None:
                item = self.stream.take()
                if item is not None:
                    return item
                if claiming:
                    return WAIT  # their claims may still create jobs (a RAW whose JPEG was unreadable)
            opened = self.before_queued is None or self.before_queued(
                self.intake.claimed if self.intake is not None else set()
            )
            self._queue = self._queued() if opened else iter(())
        return next(self._queue, None)

    def _queued(self) -> Iterator[Job]:
        after = 0
        while True:
            page = self.ledger.jobs_in_state(self.options.endpoint, JobState.QUEUED, 200, after)
            if not page:
                return
            yield from page
            after = page[-1].id

    def _resume_polling(self) -> None:
        """Tokens a previous run left outstanding are polled, not resubmitted."""
        after = 0
        now = self.clock()
        wall = self.ledger.now()
        while True:
            page = self.ledger.jobs_in_state(self.options.endpoint, JobState.POLLING, 500, after)
            if not page:
                return
            for job in page:
                # The deadline runs from the last submission or repost, whichever run made it.
                age = max(0.0, wall - job.submitted_at) if job.submitted_at is not None else 0.0
                deadline = now + self.options.job_deadline - age
                self.schedule.add(Entry(now, job.id, job.token or "", now, job.reposts, aimed=False, deadline=deadline))
            after = page[-1].id

    def _handle(self, outcome: Outcome) -> None:
        if isinstance(outcome, _Submitted):
            self.tally.submitted += 1
            self.progress("submitted", 1)
            at = outcome.at
            lead = self.latency.first_lead()
            entry = Entry(
                at + self.latency.first_delay(lead),
                outcome.job.id,
                outcome.token,
                at,
                outcome.job.reposts,
                lead=lead,
                deadline=at + self.options.job_deadline,
            )
            self.schedule.add(entry)
        elif isinstance(outcome, _Again):
            self.schedule.add(outcome.entry)
        elif isinstance(outcome, _Shared):
            self._shared([outcome.job_id], [])
            self._shared(*self.reuse.settled(outcome.job_id))
        elif isinstance(outcome, _Settled):
            self.latency.forget(outcome.job_id)
            self._count(outcome.state)
            if not outcome.uploaded:
                self.progress("unsent", 1)
            self.progress("settled", 1)
            self.on_settled(outcome.job_id, outcome.state)
            if self.sharing is not None:
                self.sharing.settled(outcome.job_id)
            self._shared(*self.reuse.settled(outcome.job_id))
        elif isinstance(outcome, Decision):
            self._decided(outcome)

    def _decided(self, decision: Decision) -> None:
        """What the shared store decided for a job: settled from another machine, a token to poll, or send it."""
        job = decision.job
        if decision.what in (SETTLED, POLL):
            self.progress("unsent", 1)  # out of the queue: another machine's answer, or its token
        if decision.what == SETTLED:
            self.tally.shared += 1
            self.progress("settled", 1)
            self.on_settled(job.id, decision.state or JobState.COMPLETED)
            self._shared(*self.reuse.settled(job.id))
        elif decision.what == POLL:
            now = self.clock()
            self.schedule.add(
                Entry(now, job.id, decision.token or "", now, job.reposts, deadline=now + self.options.job_deadline)
            )
        elif decision.what == SEND_IT:
            self._again.append(job)

    def _shared(self, shared: list[int], requeued: list[Job], *, queued: bool = True) -> None:
        """Jobs that now share a settled job's answer are done; those it could not lend to go to preparation.

        ``queued``: they were among this run's jobs to send (not waiters an earlier run left).
        """
        for job_id in shared:
            self.tally.reused += 1
            if queued:
                self.progress("unsent", 1)
            self.progress("settled", 1)
            self.on_settled(job_id, JobState.COMPLETED)
            if self.sharing is not None:
                self.sharing.settled(job_id)
        self._again.extend(requeued)

    def _reaim(self) -> None:
        """The latency estimate changed: aim the waiting polls with the new one."""
        version = self.latency.version
        if version == self._aimed_with:
            return
        self._aimed_with = version
        self.schedule.reschedule(self._due)

    def _due(self, entry: Entry) -> float:
        """When the current estimate would poll this token next."""
        if not entry.aimed:
            return entry.due
        if entry.last_poll is None:
            due = entry.submitted_at + self.latency.first_delay(entry.lead)
        else:
            entry.last_gap = self.latency.next_delay(
                entry.last_poll - entry.submitted_at, entry.previous_gap, probed=entry.polls == 1 and entry.lead > 0
            )
            due = entry.last_poll + entry.last_gap
        return max(due, entry.not_before)

    def _count(self, state: JobState) -> None:
        name = {JobState.NOT_FOUND: "not_found"}.get(state, state.value)
        setattr(self.tally, name, getattr(self.tally, name) + 1)

    # -- health -----------------------------------------------------------

    def _ok(self) -> None:
        self._accepted.set()
        with self._lock:
            self._failures = 0

    def _transient_spent(self, what: str, exc: cs.APIError) -> None:
        with self._lock:
            self._failures += 1
            if isinstance(exc, RetryAfterTooLong) and not self._stop.is_set():
                # Waiting that long in silence is no better than an outage: said, and stopped now.
                self._stop_reason = f"the service is not taking requests ({exc.description})"
                self._stop.set()
            elif self._failures >= self.options.stop_after_failures and not self._stop.is_set():
                trouble = "kept answering invalid data" if isinstance(exc, cs.AnswerError) else "was unreachable"
                self._stop_reason = f"the service {trouble} ({exc.description})"
                self._stop.set()
        log.warning("%s: %s", what, exc.description)

    def _invalid(self) -> None:
        with self._lock:
            self.tally.invalid_answers += 1

    def _refused(self, exc: cs.AuthError) -> None:
        self._stop_reason = "the service refused the credentials; check the API key and secret"
        self._stop.set()

    def _redirected(self, exc: cs.Redirected) -> None:
        """A redirect is never followed: the run stops and says where it pointed."""
        with self._lock:
            if not self._stop.is_set():
                self._stop_reason = exc.description
                self._stop.set()
        log.warning("%s", exc.description)

    def _call(self, fn: Callable[[], T], retry_if: Callable[[BaseException], bool] | None = None) -> T:
        """One request through the rate limit, the 429 gate and the retry policy."""

        def attempt() -> T:
            self.limiter.acquire()
            self.gate.wait()  # the limiter may have slept past a new 429
            if self._halt.is_set() or self._ledger_error is not None:
                raise _Halted  # the run is stopping (or cannot record an answer): no request leaves after that
            return fn()

        def on_retry(exc: BaseException) -> None:
            if isinstance(exc, cs.RateLimited):
                self.in_flight.on_rate_limited(exc.retry_after)
            pause = getattr(exc, "retry_after", None)
            if pause is not None and pause >= _LONG_PAUSE and pause <= self.options.retry.max_retry_after:
                log.warning("the service asked for a pause of %g s (Retry-After): every request waits", pause)

        result = call(
            attempt, policy=self.options.retry, gate=self.gate, sleep=self.sleep, on_retry=on_retry, retry_if=retry_if
        )
        self.in_flight.on_success()
        return result

    # -- workers --------------------------------------------------------------

    def _prepare(self, job: Job) -> Outcome:
        """Decode and downsize the job's image (a worker thread); nothing is sent yet."""
        if self._stop.is_set():
            return None
        if self.sharing is not None:  # idempotent for a job this machine already claimed
            decision = self.sharing.claim(job)
            if decision.what != SEND_IT:
                return decision if decision.what != NOT_NOW else None
        if job.content_hash.startswith(REMOTE_PREFIX):
            return _Ready(job, None)
        reason = "no readable file holds this content any more"
        for source in self.ledger.sources_of(job.id):
            try:
                prepared = self.preparer.prepare(os.fsdecode(source))
            except Cancelled:
                return None  # the run is stopping: the job stays queued
            except PrepareError as exc:
                reason = exc.reason
                break  # the same content fails the same way from any copy
            return self._ready(job, prepared)
        if self._halt.is_set():
            return None  # a stop may have cut the preparation short: not the file's fault; the next run tries again
        self.ledger.fail(job.id, reason)
        return _Settled(job.id, JobState.FAILED, uploaded=False)

    def _read_and_claim(self, item: NewFile) -> Outcome:
        """Read a streamed file once: hash it, claim its content, and prepare it when this run is to send it."""
        assert self.intake is not None
        if self._stop.is_set():
            return None  # not claimed: the next run streams it again
        claimed: list[Job | None] = []
        decided: list[Decision] = []

        def decide(digest: str) -> str:
            job, kept = self.intake.claim(item, digest)  # type: ignore[union-attr]
            if job is not None and self.sharing is not None:
                decision = self.sharing.claim(job)  # before decoding: another machine may have it
                if decision.what != SEND_IT:
                    decided.append(decision)
                    job = None
            claimed.append(job)
            return SEND if job is not None else KEEP if kept else LINK

        try:
            read = self.preparer.read_once(os.fsdecode(item.path), decide)
        except Cancelled:
            return None  # the run is stopping: a claimed job stays queued for the next run
        except PrepareError as exc:
            if self._halt.is_set():
                return None  # a stop may have cut the reading short: not the file's fault
            if not claimed:
                self.intake.unreadable(item, exc.reason)
                return None
            job = claimed[0]
            if job is None:
                return None
            self.ledger.fail(job.id, exc.reason)
            return _Settled(job.id, JobState.FAILED, uploaded=False)
        if read.metadata is not None:
            remember(os.fsdecode(item.path), *read.read_as, read.metadata)  # its sidecar copies it, not read again
        if decided and decided[0].what != NOT_NOW:
            return decided[0]  # settled from another machine, waiting for it, or a token to poll
        job, prepared = (claimed[0] if claimed else None), read.prepared
        if job is None or prepared is None:
            return None  # linked to a known caption, or to content another file sends
        return self._ready(job, prepared)

    def _ready(self, job: Job, prepared: Prepared) -> Outcome:
        """Between prepared and submitted: a similar photo's job may lend its answer (or be awaited)."""
        shared = self.reuse.claim(job, prepared.fingerprint)
        if shared is None:
            if self.sharing is not None:
                decision = self.sharing.similar(job, prepared.fingerprint)
                if decision.what != SEND_IT:
                    return decision
            return _Ready(job, prepared)
        return _Shared(job.id) if shared else None

    def _submit_ready(self, ready: _Ready) -> Outcome:
        job, prepared = ready.job, ready.prepared
        if self._stop.is_set() and self._stop_reason != "credits":
            return None
        if prepared is None:
            url = (job.source or b"").decode("utf-8")
            return self._submit(job, lambda: self.api.remote_image_request(url, self.options.params))
        params = dict(self.options.params)
        if prepared.location is not None:
            lat, lon, alt = prepared.location
            params["image_request[latitude]"] = lat
            params["image_request[longitude]"] = lon
            if alt is not None:
                params["image_request[altitude]"] = alt
        name = f"{job.content_hash[:16]}.jpg"  # the original file name stays on this machine
        return self._submit(job, lambda: self.api.image_request(io.BytesIO(prepared.data), name, params))

    def _submit(self, job: Job, send: Callable[[], dict]) -> Outcome:
        """POST (with retries); the token is committed the moment it arrives.

        An ambiguous failure (the POST may have been received and charged) is
        recorded before anything else is sent, and resent at most once.
        """
        if self.sharing is not None and not self.sharing.before_post(job):
            return None  # no claim (the store is lost, or another machine took it over): stays queued
        if not self._reserve_credit():
            return None  # stays queued for the next run
        self.ledger.begin_submit(job.id)
        lost_here = False  # an answer of this call's POSTs was lost (a held job released by the user may come in lost)
        resends = 1 if self.options.resend_ambiguous else 0

        def post() -> dict:
            nonlocal lost_here
            try:
                return send()
            except cs.APIError as exc:
                if exc.ambiguous:
                    lost_here = True
                    if self.ledger.answer_lost(job.id, exc.description):
                        self._possible_duplicate()
                raise

        def may_resend(exc: BaseException) -> bool:
            nonlocal resends
            if isinstance(exc, cs.AnswerError):
                return False  # answered, just not usefully: sending again would pay again, for the same answer
            if not getattr(exc, "ambiguous", False):
                return True  # surely not received: free to retry
            if resends < 1 or not self._reserve_credit():
                return False
            resends -= 1
            return True

        try:
            answer = self._call(post, retry_if=may_resend)
        except _Halted:  # the run is stopping before (another) POST left: the next run sends it
            self.ledger.requeue(job.id, "interrupted before an answer")
            return None
        except cs.AuthError as exc:
            self.ledger.requeue(job.id, exc.description)
            self._refused(exc)
            return None
        except cs.ValidationError as exc:
            self.ledger.fail(job.id, exc.description)  # the service refused the request as invalid: for good
            return _Settled(job.id, JobState.FAILED, uploaded=False)
        except cs.Redirected as exc:
            self.ledger.requeue(job.id, exc.description)  # nothing was sent to where it pointed
            self._redirected(exc)
            return None
        except cs.AnswerError as exc:
            self._invalid()
            self._transient_spent("submit", exc)
            if exc.token is None:
                # Maybe charged, and no token to poll: failed with the reason, never resent in a loop.
                self.ledger.fail(job.id, exc.reason, maybe_charged=True)
                return _Settled(job.id, JobState.FAILED)
            answer = {"token": exc.token}  # the token is sound, the rest of the answer is not believed
        except cs.APIError as exc:
            # An outage, a 429 episode, a lost answer: never a failed file. The next run sends it.
            self._transient_spent("submit", exc)
            if lost_here and not self.options.resend_ambiguous:
                self.ledger.hold(job.id, exc.description)
                with self._lock:
                    self.tally.held += 1
            else:
                self.ledger.requeue(job.id, exc.description)
            return None
        token = answer["token"]  # validated by the client
        try:
            if self.ledger.record_token(job.id, token, answer.get("status")):
                self._possible_duplicate()
        except TokenHeld as exc:
            # Two uploads, one token: the holder keeps it; this upload was charged and has nothing to poll.
            self._invalid()
            reason = f"the service gave this upload a token the ledger already holds for job {exc.holder}"
            log.warning("job %d: %s", job.id, reason)
            self.ledger.fail(job.id, reason, maybe_charged=True)
            return _Settled(job.id, JobState.FAILED)
        if self.sharing is not None:
            self.sharing.token(job, token)
        self._ok()
        return _Submitted(job, token, self.clock())

    def _possible_duplicate(self) -> None:
        with self._lock:
            self.tally.possible_duplicates += 1

    def _for_token(self, what: str, entry: Entry, fn: Callable[[], T]) -> T | _Again:
        """A call about a token; on failure the token waits for a later poll (it is never lost)."""
        try:
            # An invalid answer is not retried at once: the schedule asks again a poll interval later.
            return self._call(fn, retry_if=lambda exc: not isinstance(exc, cs.AnswerError))
        except _Halted:
            return _Again(entry)  # the run is stopping; the token stays in the ledger
        except cs.AuthError as exc:
            self._refused(exc)
        except cs.Redirected as exc:
            self._redirected(exc)
        except cs.AnswerError as exc:
            self._invalid()
            if what == "repost":
                raise  # the caller decides: a repost's answer is never read
            if self.clock() >= entry.deadline:
                raise  # still no valid answer at the deadline: the caller fails the job with the reason
            self.ledger.note_error(entry.job_id, exc.reason)
            self._transient_spent(what, exc)
        except cs.APIError as exc:
            if what == "repost" and not exc.retryable:
                raise  # the service refused the repost (any 4xx): the caller settles the job as it stands
            if what == "poll" and not exc.retryable and self.clock() >= entry.deadline:
                raise  # answered, but never with a final status: the caller ends the job
            self._transient_spent(what, exc)
        entry.due = entry.not_before = self.clock() + self.options.max_poll_interval
        return _Again(entry)

    def _poll(self, entry: Entry) -> Outcome:
        try:
            answer = self._for_token("poll", entry, lambda: self.api.image_response(entry.token))
        except cs.AnswerError as exc:
            log.warning("token %s: %s; recorded as failed", entry.token, exc.description)
            self.latency.forget(entry.job_id)
            self.ledger.fail(entry.job_id, exc.reason, maybe_charged=True)
            return _Settled(entry.job_id, JobState.FAILED)
        except cs.APIError:
            return self._expire(entry, {})
        if isinstance(answer, _Again):
            return answer
        self._ok()
        with self._lock:
            self.tally.polls += 1
        now = self.clock()
        status = answer.get("status")
        if status in WORKING or status is None:
            if now >= entry.deadline:
                return self._expire(entry, answer)
            self.ledger.count_poll(entry.job_id, status or cs.STATUS_NOT_COMPLETED)
            self.latency.working(entry.job_id, now - entry.submitted_at)
            entry.polls += 1
            gap = self.latency.next_delay(
                now - entry.submitted_at, entry.last_gap, probed=entry.polls == 1 and entry.lead > 0
            )
            entry.previous_gap = entry.last_gap
            # The last poll falls on the deadline, not up to a gap after it.
            due = min(now + gap, max(entry.deadline, now + self.options.poll_interval))
            entry.last_poll, entry.last_gap, entry.due, entry.aimed = now, gap, due, True
            return _Again(entry)
        low = (entry.last_poll if entry.last_poll is not None else entry.submitted_at) - entry.submitted_at
        if status == cs.STATUS_COMPLETED:
            self.latency.observe(low, now - entry.submitted_at, entry.job_id)
            self.ledger.settle(entry.job_id, JobState.COMPLETED, answer, (low, now - entry.submitted_at))
            return _Settled(entry.job_id, JobState.COMPLETED)
        if status == cs.STATUS_SKIPPED:
            if answer.get("reason") in REPOST_ONCE and entry.reposts < 1:
                return self._repost(entry, answer)
            self.ledger.settle(entry.job_id, JobState.SKIPPED, answer)
            return _Settled(entry.job_id, JobState.SKIPPED)
        if status == cs.STATUS_TIMEOUT:
            if entry.reposts < self.options.timeout_reposts:
                return self._repost(entry, answer)
            self.ledger.settle(entry.job_id, JobState.TIMEOUT, answer)
            return _Settled(entry.job_id, JobState.TIMEOUT)
        if status == cs.STATUS_NOT_FOUND:
            self.ledger.settle(entry.job_id, JobState.NOT_FOUND, answer)
            return _Settled(entry.job_id, JobState.NOT_FOUND)
        if now >= entry.deadline:
            return self._expire(entry, answer)
        log.warning("token %s: unknown status %r, polling again", entry.token, status)
        entry.due = entry.not_before = min(
            now + self.options.max_poll_interval, max(entry.deadline, now + self.options.poll_interval)
        )
        return _Again(entry)

    def _expire(self, entry: Entry, answer: dict) -> Outcome:
        """No final answer by the job's deadline: record it as timed out, with that reason."""
        log.warning("token %s: %s (%g s); recorded as timeout", entry.token, DEADLINE_REASON, self.options.job_deadline)
        self.latency.forget(entry.job_id)
        self.ledger.settle(entry.job_id, JobState.TIMEOUT, answer, reason=DEADLINE_REASON)
        return _Settled(entry.job_id, JobState.TIMEOUT)

    def _repost(self, entry: Entry, answer: dict) -> Outcome:
        try:
            again = self._for_token("repost", entry, lambda: self.api.repost(entry.token))
        except cs.AnswerError as exc:
            # The service took the repost (2xx) and answered something unreadable; its body is never used.
            log.warning("token %s: %s", entry.token, exc.description)
            again = None
        except cs.APIError:
            # Refused (any 4xx): the job ends as the service last gave it; a timeout says why it was not reposted.
            if answer.get("status") == cs.STATUS_SKIPPED:
                self.ledger.settle(entry.job_id, JobState.SKIPPED, answer)
                return _Settled(entry.job_id, JobState.SKIPPED)
            self.ledger.settle(entry.job_id, JobState.TIMEOUT, answer, reason=REPOST_REFUSED)
            return _Settled(entry.job_id, JobState.TIMEOUT)
        if isinstance(again, _Again):
            return again
        self.ledger.record_repost(entry.job_id, answer.get("status") or "", answer.get("reason"))
        with self._lock:
            self.tally.reposts += 1
        now = self.clock()
        lead = self.latency.first_lead()
        return _Again(
            Entry(
                now + self.latency.first_delay(lead),
                entry.job_id,
                entry.token,
                now,
                entry.reposts + 1,
                lead=lead,
                deadline=now + self.options.job_deadline,
            )
        )
