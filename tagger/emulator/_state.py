"""The emulator's account: jobs, credits, fault dice and counters, behind one lock.

A job's fate is drawn when it is (re)queued: a latency from the configured
range and, from the fault rates, whether this attempt settles as its real
result, as skipped/unsure or as a timeout. Its status at any moment is then
computed from the clock, so nothing runs in the background.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ._persist import StateFile
from ._vision import Analysis

__all__ = [
    "Faults",
    "Job",
    "Account",
    "TERMINAL",
    "REPOSTABLE_REASONS",
    "MAX_TTL",
    "IN_FLIGHT_GRACE",
    "LOST_ANSWER_KINDS",
]

TERMINAL = frozenset({"completed", "skipped", "timeout", "not found"})
REPOSTABLE_REASONS = frozenset({"unsure", "close"})
# What ttl=max grants: a day is longer than any run waits for one job.
MAX_TTL = 86400.0
# Requests already on their way when a 429 went out cannot honour it (nor can
# one sent before the client thread that got the 429 has told the others); those
# arriving this soon after it was sent are not counted as in its window.
IN_FLIGHT_GRACE = 0.1
#: How an accepted submission's answer can be lost: a read timeout (the answer is held past the
#: client's timeout, then the connection closed), a TCP reset, or a 5xx sent after the job was created.
LOST_ANSWER_KINDS = ("timeout", "reset", "500", "502", "504")


@dataclass
class Faults:
    """Fault injection (probabilities per request or per job attempt, 0.0 is off; counts and windows).

    Outage: every request is answered ``outage_status`` (with Retry-After
    ``outage_retry_after`` when set) for the first ``outage_requests``
    requests, or for ``outage_seconds``, after these faults are set;
    nothing is created or charged.

    Lost answers: the service accepts a submission (creates the job, charges
    a credit, counts it) and then loses the answer, for the next
    ``lost_answers`` accepted submissions and at ``lost_answer_rate``; as
    ``lost_answer_kind`` says (one of ``LOST_ANSWER_KINDS``, or ``"cycle"``
    for each in turn). A ``"timeout"`` holds the answer ``lost_answer_seconds``
    (longer than the client's read timeout), then closes the connection.

    ``submit_delay`` holds every accepted submission's answer that long
    (to see how many POSTs a client keeps in flight).
    """

    server_error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: float = 1.0
    in_flight_grace: float = (
        IN_FLIGHT_GRACE  # how long after a 429 a request may still arrive uncounted (already on its way)
    )
    drop_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 2.0
    unsure_rate: float = 0.0
    timeout_rate: float = 0.0
    outage_requests: int = 0
    outage_seconds: float = 0.0
    outage_status: int = 503
    outage_retry_after: float | None = None
    lost_answers: int = 0
    lost_answer_rate: float = 0.0
    lost_answer_kind: str = "reset"
    lost_answer_seconds: float = 5.0
    submit_delay: float = 0.0
    # Jobs that never settle: each attempt answers ``stuck_status`` for ever ("" answers without a status).
    stuck_rate: float = 0.0
    stuck_status: str = "not completed"
    # When set, every repost is answered with this HTTP status and no body (a refusal the client must settle).
    repost_status: int = 0
    # Hostile or broken answers (a service that cannot be trusted). ``submit_fields`` are merged into every
    # accepted submission's answer (e.g. {"token": "../../../admin"}, {"status": ["x"]}); ``final_fields``
    # into every poll answer of a settled job (e.g. {"name": ["a"]}, {"name": "\ud800"}, {"status": {}}).
    submit_fields: dict[str, object] = field(default_factory=dict)
    final_fields: dict[str, object] = field(default_factory=dict)
    # The next N accepted submissions (counted from when set) answer the token of the one before them:
    # two uploads, both charged, one token.
    repeat_tokens: int = 0
    # Sent as X-CloudSight-CreditBalance instead of the balance ("inf", "nan", "1e400", "-1", ...).
    credit_header: str = ""
    # Every request answered with ``redirect_status`` and a Location of this base URL plus the request's path.
    redirect_to: str = ""
    redirect_status: int = 307

    def __post_init__(self) -> None:
        if self.repost_status and not 100 <= self.repost_status <= 599:
            raise ValueError(f"repost_status must be an HTTP status, got {self.repost_status}")
        for name in (
            "server_error_rate",
            "rate_limit_rate",
            "drop_rate",
            "slow_rate",
            "unsure_rate",
            "timeout_rate",
            "lost_answer_rate",
            "stuck_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in (
            "retry_after",
            "slow_seconds",
            "outage_requests",
            "outage_seconds",
            "lost_answers",
            "lost_answer_seconds",
            "submit_delay",
            "repeat_tokens",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.outage_retry_after is not None and self.outage_retry_after < 0:
            raise ValueError("outage_retry_after must not be negative")
        if not 500 <= self.outage_status <= 599:
            raise ValueError(f"outage_status must be a 5xx code, got {self.outage_status}")
        if self.redirect_to and not 300 <= self.redirect_status <= 399:
            raise ValueError(f"redirect_status must be a 3xx code, got {self.redirect_status}")
        for name in ("submit_fields", "final_fields"):
            try:  # what the answers carry must go out as JSON (lone surrogates do, escaped)
                json.dumps(getattr(self, name))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must be JSON-serialisable: {exc}") from None
        if any(c in self.credit_header for c in "\r\n"):
            raise ValueError("credit_header must be one line")
        if self.lost_answer_kind not in (*LOST_ANSWER_KINDS, "cycle"):
            raise ValueError(
                f"lost_answer_kind must be one of {', '.join(LOST_ANSWER_KINDS)} or cycle, got {self.lost_answer_kind!r}"
            )


@dataclass
class Job:
    """One submitted image and the outcome of its current attempt."""

    token: str
    url: str
    ttl: float
    analysis: Analysis
    queued_at: float = 0.0
    settles_at: float = 0.0
    # What this attempt settles as: "completed", "skipped" (with reason) or "timeout".
    outcome: str = "completed"
    reason: str | None = None
    # What the job answers until it settles ("" for no status at all: the stuck fault).
    working: str = "not completed"

    def status(self, now: float) -> str:
        """The status the service reports at time now."""
        return self.outcome if now >= self.settles_at else self.working

    def answer(self, now: float) -> dict[str, object]:
        """The poll answer at time now."""
        status = self.status(now)
        body: dict[str, object] = {
            "token": self.token,
            "url": self.url,
            "ttl": round(max(0.0, self.queued_at + self.ttl - now), 1),
        }
        if status:
            body["status"] = status
        if status == "completed":
            body["name"] = self.analysis.caption
            body["flags"] = []
        elif status == "skipped":
            body["reason"] = self.reason
        return body


@dataclass
class Account:
    """All shared state of one emulator; every method takes the lock itself."""

    latency: tuple[float, float]
    faults: Faults
    credits: int
    seed: int | None
    clock: Callable[[], float]
    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict[str, Job] = field(default_factory=dict)
    seen_digests: set[bytes] = field(default_factory=set)
    retry_window_starts: float = float("-inf")
    retry_window_ends: float = float("-inf")
    counts: dict[str, int] = field(default_factory=dict)
    polls_by_token: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    lost_by_kind: dict[str, int] = field(default_factory=dict)
    # Outage and lost-answer budgets, counted from when the faults were set.
    outage_left: int = 0
    outage_until: float = float("-inf")
    lost_left: int = 0
    lost_turn: int = 0
    submitting_now: int = 0
    #: Where jobs, balance and charges outlive the process (None: kept in memory only, as tests want).
    store: StateFile | None = None
    charged: int = 0  # credits charged, ever (since the state file was made)
    charged_before: int = 0  # of which before this process
    repeat_left: int = 0
    last_token: str | None = None

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.reset_counters()
        self.set_faults(self.faults)
        if self.store is not None:
            self.jobs = self.store.jobs(Job)
            self.seen_digests = self.store.digests()
            stored = self.store.value("credits")
            if stored is None:
                self.store.set_credits(self.credits)
            else:
                self.credits = stored
            self.charged = self.charged_before = self.store.value("charged") or 0

    def set_faults(self, faults: Faults) -> None:
        """Change the faults; an outage and a count of lost answers start from now."""
        with self.lock:
            self.faults = faults
            self.outage_left = faults.outage_requests
            self.outage_until = self.clock() + faults.outage_seconds if faults.outage_seconds else float("-inf")
            self.lost_left = faults.lost_answers
            self.repeat_left = faults.repeat_tokens

    # -- counters -------------------------------------------------------

    def reset_counters(self) -> None:
        """Zero every counter; jobs, credits, the Retry-After window and the memory of submitted images stay."""
        with self.lock:
            self.counts = dict.fromkeys(
                (
                    "requests",
                    "submissions",
                    "polls",
                    "reposts",
                    "duplicates",
                    "remote_submissions",
                    "auth_failures",
                    "validation_errors",
                    "server_errors_injected",
                    "rate_limited",
                    "dropped",
                    "in_retry_after_window",
                    "outage_errors",
                    "lost_answers",
                    "max_concurrent_submissions",
                    "repeated_tokens",
                    "redirected",
                    "unrouted",
                ),
                0,
            )
            self.polls_by_token = {}
            self.first_seen = {}
            self.lost_by_kind = dict.fromkeys(LOST_ANSWER_KINDS, 0)

    def count(self, name: str) -> None:
        """Add one to a counter."""
        with self.lock:
            self.counts[name] += 1

    def snapshot(self) -> dict[str, object]:
        """A plain-dict copy of the counters."""
        with self.lock:
            now = self.clock()
            settled = {
                token: job.settles_at
                for token, job in self.jobs.items()
                if job.outcome == "completed" and job.settles_at <= now
            }
            return {
                **self.counts,
                "polls_by_token": dict(self.polls_by_token),
                "completed_at": settled,
                "first_seen_completed_at": dict(self.first_seen),
                "lost_answers_by_kind": dict(self.lost_by_kind),
            }

    # -- per-request dice -----------------------------------------------

    def arrive(self) -> str | None:
        """Count a request and roll its faults: "outage", "drop", "error", "rate_limit" or None."""
        with self.lock:
            now = self.clock()
            self.counts["requests"] += 1
            if self.retry_window_starts <= now < self.retry_window_ends:
                self.counts["in_retry_after_window"] += 1
            faults = self.faults
            if self.outage_left > 0 or now < self.outage_until:
                self.outage_left = max(0, self.outage_left - 1)
                self.counts["outage_errors"] += 1
                return "outage"
            if faults.drop_rate and self.rng.random() < faults.drop_rate:
                self.counts["dropped"] += 1
                return "drop"
            if faults.server_error_rate and self.rng.random() < faults.server_error_rate:
                self.counts["server_errors_injected"] += 1
                return "error"
            if faults.rate_limit_rate and self.rng.random() < faults.rate_limit_rate:
                self.counts["rate_limited"] += 1
                return "rate_limit"
            return None

    def announce_retry_after(self, seconds: float) -> None:
        """Open the shared Retry-After window once a 429 saying so has been sent."""
        with self.lock:
            now = self.clock()
            if now >= self.retry_window_ends:
                self.retry_window_starts = now + self.faults.in_flight_grace
            self.retry_window_ends = max(self.retry_window_ends, now + seconds)

    def pick(self, choices: tuple[int, ...]) -> int:
        """A seeded choice (which 5xx code to answer)."""
        with self.lock:
            return self.rng.choice(choices)

    def slow_delay(self) -> float:
        """Seconds to hold this answer back (0 unless the slow fault fires)."""
        with self.lock:
            faults = self.faults
            if faults.slow_rate and self.rng.random() < faults.slow_rate:
                return faults.slow_seconds
            return 0.0

    def lose_answer(self) -> str | None:
        """Whether the answer of the submission just accepted is lost, and how (a kind), counting it."""
        with self.lock:
            faults = self.faults
            lose = False
            if self.lost_left > 0:
                self.lost_left -= 1
                lose = True
            elif faults.lost_answer_rate and self.rng.random() < faults.lost_answer_rate:
                lose = True
            if not lose:
                return None
            if faults.lost_answer_kind == "cycle":
                kind = LOST_ANSWER_KINDS[self.lost_turn % len(LOST_ANSWER_KINDS)]
                self.lost_turn += 1
            else:
                kind = faults.lost_answer_kind
            self.counts["lost_answers"] += 1
            self.lost_by_kind[kind] += 1
            return kind

    def submitting(self, delta: int) -> None:
        """Track submissions being answered at this moment (and the most at once)."""
        with self.lock:
            self.submitting_now += delta
            self.counts["max_concurrent_submissions"] = max(
                self.counts["max_concurrent_submissions"], self.submitting_now
            )

    def balance(self) -> int:
        """Credits left."""
        with self.lock:
            return self.credits

    # -- jobs -----------------------------------------------------------

    def submit(self, image: bytes, url_for: Callable[[str], str], ttl: float, analysis: Analysis, remote: bool) -> Job:
        """Accept an image: charge a credit, create and queue its job."""
        digest = hashlib.sha256(image).digest()
        token = secrets.token_urlsafe(16)
        job = Job(token=token, url=url_for(token), ttl=ttl, analysis=analysis)
        with self.lock:
            self.counts["submissions"] += 1
            if remote:
                self.counts["remote_submissions"] += 1
            if digest in self.seen_digests:
                self.counts["duplicates"] += 1
            self.seen_digests.add(digest)
            self.credits = max(0, self.credits - 1)
            self.charged += 1
            if self.repeat_left > 0 and self.last_token in self.jobs:
                # The repeat_tokens fault: charged, and answered with the previous upload's token.
                self.repeat_left -= 1
                self.counts["repeated_tokens"] += 1
                return self.jobs[self.last_token]
            self._queue(job)
            self.jobs[token] = job
            self.last_token = token
            if self.store is not None:  # on disk before the answer carrying the token goes out
                self.store.submitted(job, digest, self.credits, self.charged)
        return job

    def poll(self, token: str) -> dict[str, object]:
        """The answer to a poll of token, counting it."""
        with self.lock:
            now = self.clock()
            self.counts["polls"] += 1
            self.polls_by_token[token] = self.polls_by_token.get(token, 0) + 1
            job = self.jobs.get(token)
            body: dict[str, object] = job.answer(now) if job else {"status": "not found", "token": token}
            if body.get("status") in TERMINAL:
                if token not in self.first_seen:
                    self.first_seen[token] = now
                if job is not None and self.faults.final_fields:
                    body.update(self.faults.final_fields)
            return body

    def repost(self, token: str) -> str:
        """Re-queue a timed-out or unsure/close job: "ok", "unknown" or "refused"."""
        with self.lock:
            job = self.jobs.get(token)
            if job is None:
                return "unknown"
            if self.faults.repost_status:
                return "fault"
            status = job.status(self.clock())
            if not (status == "timeout" or (status == "skipped" and job.reason in REPOSTABLE_REASONS)):
                return "refused"
            self.counts["reposts"] += 1
            # The job settles anew, so its first sighting starts over too.
            self.first_seen.pop(token, None)
            self._queue(job)
            if self.store is not None:
                self.store.requeued(job)
            return "ok"

    def forget(self, token: str) -> bool:
        """Drop a job, as the service does once it stops keeping it: polls answer "not found"."""
        with self.lock:
            known = self.jobs.pop(token, None) is not None
            if known and self.store is not None:
                self.store.forgotten(token)
            return known

    def _queue(self, job: Job) -> None:
        # Caller holds the lock.
        now = self.clock()
        low, high = self.latency
        latency = self.rng.uniform(low, high)
        job.queued_at = now
        faults = self.faults
        job.working = "not completed"
        if faults.stuck_rate and self.rng.random() < faults.stuck_rate:
            job.outcome, job.reason, job.settles_at = "completed", None, float("inf")
            job.working = faults.stuck_status
        elif faults.timeout_rate and self.rng.random() < faults.timeout_rate:
            job.outcome, job.reason, job.settles_at = "timeout", None, now + min(latency, job.ttl)
        elif latency > job.ttl:
            job.outcome, job.reason, job.settles_at = "timeout", None, now + job.ttl
        elif faults.unsure_rate and self.rng.random() < faults.unsure_rate:
            job.outcome, job.reason, job.settles_at = "skipped", "unsure", now + latency
        elif job.analysis.skip_reason:
            job.outcome, job.reason, job.settles_at = "skipped", job.analysis.skip_reason, now + latency
        else:
            job.outcome, job.reason, job.settles_at = "completed", None, now + latency
