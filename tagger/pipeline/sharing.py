"""The dispatcher's hook into the shared store: claim before sending, wait and link, publish answers.

``Sharing.claim`` runs before a job is prepared (for a streamed file, right
after its content was claimed in the local ledger, before it is decoded):
the content is this machine's to send, already answered elsewhere (settled
here with that answer, nothing sent), or held by another live machine (the
job waits here, locally queued, until that answer comes or the claim
lapses and is taken over). ``similar`` runs after the local similar-photo
check found no lender: a similar photo another machine has answered lends
its caption, one in flight elsewhere is waited for. Answers are published
in batches, once per tick of the conductor.

When the store is lost mid-run, nothing more is sent (no claim can be
made): those jobs stay queued for the next run. Tokens already out are
polled and recorded locally; their answers are published by the next run
that reaches the store (``publish_missed``), and the tokens still out at the
end of a run, or at the start of the next, so that a machine taking a claim
over polls its token instead of sending the content again
(``publish_tokens``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from tagger.ledger.answers import answers_of, published, record_published, settled_since, tokens_out
from tagger.ledger.store import Job, JobState, Ledger
from tagger.shared.base import Answer, Claim, FileRow, SharedStore, StoreDown

__all__ = ["Sharing", "SEND", "WAIT", "SETTLED", "POLL", "NOT_NOW", "Decision"]

log = logging.getLogger("tagger.pipeline.sharing")

SEND, WAIT, SETTLED, POLL, NOT_NOW = "send", "wait", "settled", "poll", "not now"
#: Seconds between two looks at what this machine waits for.
LOOK_EVERY = 0.5


@dataclass(frozen=True)
class Decision:
    """What to do with a job: ``SEND`` it, ``WAIT`` for another machine, it was ``SETTLED`` from the store,
    ``POLL`` a taken-over token, or ``NOT_NOW`` (the store is lost: the job stays queued)."""

    what: str
    job: Job
    token: str | None = None
    state: JobState | None = None


def _answer(row: tuple) -> tuple[str, Answer]:
    digest, state, status, caption, reason, flags, categories = row
    return digest, Answer(
        state,
        status,
        caption,
        reason,
        tuple(flags) if flags is not None else None,
        tuple(categories) if categories is not None else None,
    )


class Sharing:
    """One run's use of the shared store (``store.enabled`` False: every call decides ``SEND`` at no cost)."""

    def __init__(self, store: SharedStore, ledger: Ledger, endpoint: str, *, reuse_similar: bool = True) -> None:
        self.store = store
        self.ledger = ledger
        self.endpoint = endpoint
        self.reuse_similar = reuse_similar
        self.enabled = store.enabled
        self._lock = threading.Lock()
        self._contents: dict[str, Job] = {}  # content claimed elsewhere -> this machine's job waiting for it
        self._lenders: dict[str, list[Job]] = {}  # a similar content in flight elsewhere -> jobs waiting for it
        self._no_similar: set[int] = set()  # jobs whose lender elsewhere lent nothing: sent on their own
        self._outbox: list[int] = []  # settled jobs whose answers are not yet published
        self._next_look = 0.0
        self.not_sent = 0  # jobs left queued because the store could not be reached
        self.from_store = 0  # jobs settled with an answer another machine paid for
        self.missed = False  # a publication failed: the next run publishes again from the watermark

    # -- claims ----------------------------------------------------------------

    def claim(self, job: Job) -> Decision:
        """Before preparing ``job``: may this machine send it?"""
        if not self.enabled:
            return Decision(SEND, job)
        try:
            claim = self.store.claim(job.content_hash)
        except StoreDown:
            with self._lock:
                self.not_sent += 1
            return Decision(NOT_NOW, job)
        return self._decide(job, claim)

    def _decide(self, job: Job, claim: Claim) -> Decision:
        if claim.kind == "settled" and claim.answer is not None:
            self._settle(job, claim.answer)
            return Decision(SETTLED, job, state=JobState(claim.answer.state))
        if claim.kind == "elsewhere":
            with self._lock:
                self._contents[job.content_hash] = job
            return Decision(WAIT, job)
        if claim.token:
            # The owner died after the service answered: poll its token, nothing is sent again.
            if self.ledger.record_token(job.id, claim.token, None):
                log.info("job %d: token taken over", job.id)
            return Decision(POLL, job, token=claim.token)
        if claim.lost:
            # Its owner died with a POST in the air: the resend is a possible duplicate, as a lost answer is.
            self.ledger.answer_lost(job.id, "taken over from a machine that died while sending it")
        return Decision(SEND, job)

    def _settle(self, job: Job, answer: Answer) -> None:
        self.ledger.settle(job.id, JobState(answer.state), answer.as_service())
        with self._lock:
            self.from_store += 1

    def before_post(self, job: Job) -> bool:
        """Just before the POST: False when the claim is not (or no longer) this machine's: do not send."""
        if not self.enabled:
            return True
        try:
            return bool(self.store.sending(job.content_hash))
        except StoreDown:
            with self._lock:
                self.not_sent += 1
            return False

    def token(self, job: Job, token: str) -> None:
        """The service answered the upload: others taking the claim over poll this token."""
        if not self.enabled:
            return
        try:
            self.store.token(job.content_hash, token)
        except StoreDown:
            # The claim stays ours; the token is published at the end of the run (or by the next one), so that a
            # machine taking the claim over polls it instead of paying again.
            self.missed = True

    # -- similar photos --------------------------------------------------------

    def similar(self, job: Job, fp: object) -> Decision:
        """After the local check found no lender: a similar photo another machine answered, or has in flight."""
        if not self.enabled or not self.reuse_similar or fp is None or job.id in self._no_similar:
            return Decision(SEND, job)
        try:
            lender = self.store.similar(
                job.content_hash,
                fp.key,  # type: ignore[attr-defined]
                fp.aspect,  # type: ignore[attr-defined]
                fp.blob(),  # type: ignore[attr-defined]
                fp.probes(),  # type: ignore[attr-defined]
            )
        except StoreDown:
            return Decision(SEND, job)  # the claim is held: sending alone is safe, only maybe not needed
        if lender is None:
            return Decision(SEND, job)
        if lender.answer is not None:
            self._settle(job, lender.answer)
            self.settled(job.id)  # this content's answer is known now too
            return Decision(SETTLED, job, state=JobState.COMPLETED)
        with self._lock:
            self._lenders.setdefault(lender.content_hash, []).append(job)
        return Decision(WAIT, job)

    # -- waiting ---------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Jobs waiting for another machine's answer."""
        with self._lock:
            return len(self._contents) + sum(len(v) for v in self._lenders.values())

    def look(self, now: float | None = None) -> list[Decision]:
        """At most every ``LOOK_EVERY`` seconds: what became of the contents waited for."""
        now = time.monotonic() if now is None else now
        if not self.enabled or now < self._next_look:
            return []
        self._next_look = now + LOOK_EVERY
        self.flush()
        with self._lock:
            contents = dict(self._contents)
            lenders = {d: list(jobs) for d, jobs in self._lenders.items()}
        if not contents and not lenders:
            return []
        out: list[Decision] = []
        try:
            claims = self.store.look(list(contents))
            lent = self.store.lenders(list(lenders)) if lenders else {}
        except StoreDown:
            return []
        for digest, claim in claims.items():
            if claim.kind == "elsewhere":
                continue
            job = contents[digest]
            with self._lock:
                self._contents.pop(digest, None)
            out.append(self._decide(job, claim))
        for digest, answer in lent.items():
            if answer is None:
                continue
            with self._lock:
                jobs = self._lenders.pop(digest, [])
            for job in jobs:
                if isinstance(answer, Answer):
                    self._settle(job, answer)
                    self.settled(job.id)
                    out.append(Decision(SETTLED, job, state=JobState.COMPLETED))
                else:
                    self._no_similar.add(job.id)
                    out.append(Decision(SEND, job))
        return out

    # -- publishing ------------------------------------------------------------

    def settled(self, job_id: int) -> None:
        """A job settled here: its answer is published at the next tick."""
        if self.enabled:
            with self._lock:
                self._outbox.append(job_id)

    def flush(self) -> None:
        """Publish the answers settled since the last tick (one batch)."""
        with self._lock:
            ids, self._outbox = self._outbox, []
        if not ids:
            return
        try:
            self.store.settled([_answer(r) for r in answers_of(self.ledger, ids)])
        except StoreDown:
            self.missed = True

    def publish_missed(self, since: float) -> int:
        """At the start of a run: publish the answers settled here since ``since`` (a lost store missed them)."""
        rows = settled_since(self.ledger, self.endpoint, since)
        for start in range(0, len(rows), 500):
            self.store.settled([_answer(r) for r in rows[start : start + 500]])
        return len(rows)

    def publish_tokens(self) -> int:
        """The tokens of the jobs still out (the store may have missed them), into the claims this machine holds."""
        return self.store.tokens(tokens_out(self.ledger, self.endpoint))

    def publish_files(self, rows: Iterable[FileRow], batch: int = 1000) -> tuple[int, int]:
        """Report the files whose row changed since this ledger last reported to this store; withdraw those gone.

        Returns (reported, withdrawn). A nightly run over an unchanged archive sends nothing.
        """
        store = self.store.identity()
        before = published(self.ledger, store)
        seen: set[str] = set()
        changed: list[tuple[FileRow, str]] = []
        for row in rows:
            seen.add(row.path)
            digest = _digest(row, self.store.machine)
            if before.get(row.path) != digest:
                changed.append((row, digest))
        gone = [path for path in before if path not in seen]
        for start in range(0, len(changed), batch):
            part = changed[start : start + batch]
            self.store.publish_files([row for row, _ in part])
            record_published(self.ledger, store, [(row.path, digest) for row, digest in part], [])
        for start in range(0, len(gone), batch):
            self.store.withdraw_files(gone[start : start + batch])
            record_published(self.ledger, store, [], gone[start : start + batch])
        log.info("files reported to the shared store: %d changed, %d withdrawn", len(changed), len(gone))
        return len(changed), len(gone)


def _digest(row: FileRow, machine: str) -> str:
    """What a file's report says, in 16 bytes: a changed content, status, caption, keyword or machine name changes it."""
    text = json.dumps([row.content_hash, row.status, row.caption, list(row.keywords), machine], ensure_ascii=False)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
