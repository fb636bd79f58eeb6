"""Reuse the caption of a similar photo: resized, re-encoded, converted and rotated copies cost one credit.

``Reuse.claim`` runs between preparing a job and submitting it. Under one
lock it records the job's fingerprint and looks for a job of the same
endpoint whose fingerprint passes ``same_photo``: a completed one lends its
answer at once; one still in flight (fingerprinted and not yet settled)
makes this job ``waiting`` until it settles. So of two similar files
prepared at the same time, the first claims and is sent, the second waits.
A lender that ends other than completed lends nothing: its waiters are
queued again and sent on their own.

``predict`` is the dry run's twin: the same decode, the same test, the same
order of claims, no writes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from tagger.ledger.store import Job, JobState, Ledger
from tagger.prepare.fingerprint import ASPECT_TOLERANCE, MEANS_SLACK, Fingerprint, same_photo
from tagger.prepare.normalise import PrepareError, Preparer

__all__ = ["Reuse", "Prediction", "predict"]


def _aspect_range(aspect: float) -> tuple[float, float]:
    # Slightly wider than the tolerance: same_photo makes the exact decision.
    return aspect * (1 - 1.5 * ASPECT_TOLERANCE), aspect * (1 + 1.5 * ASPECT_TOLERANCE)


def _closeness(a: Fingerprint, b: Fingerprint) -> int:
    return sum(abs(x - y) for x, y in zip(a.detail, b.detail, strict=True))


#: Lenders a dry run can count on: answered, or sent and not yet answered (queued ones are in its own list).
_PREDICT_LENDERS = (JobState.COMPLETED.value, JobState.SUBMITTING.value, JobState.POLLING.value)


def find_lender(
    ledger: Ledger, endpoint: str, fp: Fingerprint, *, exclude_job: int = 0, states: tuple[str, ...] | None = None
) -> tuple[int, str] | None:
    """(job id, state) of the job whose answer ``fp``'s photo may share: completed first, then closest, then oldest."""
    low, high = _aspect_range(fp.aspect)
    best: tuple[tuple[bool, int, int], int, str] | None = None
    extra = {"states": states} if states else {}
    candidates = ledger.similar.candidates(
        endpoint, fp.probes(), fp.rounded_means(), MEANS_SLACK, low, high, exclude_job=exclude_job, **extra
    )
    for job_id, state, aspect, blob in candidates:
        other = Fingerprint.from_blob(blob, aspect)
        if not same_photo(fp, other):
            continue
        rank = (state != "completed", _closeness(fp, other), job_id)
        if best is None or rank < best[0]:
            best = (rank, job_id, state)
    return None if best is None else (best[1], best[2])


class Reuse:
    """The dispatcher's hook: claim a prepared job, settle the waiters of a settled one."""

    def __init__(self, ledger: Ledger, endpoint: str, *, enabled: bool = True) -> None:
        self.ledger = ledger
        self.endpoint = endpoint
        self.enabled = enabled
        self._lock = threading.Lock()  # record-then-look-up must not interleave between two similar files

    def claim(self, job: Job, fp: Fingerprint | None) -> bool | None:
        """Record ``job``'s fingerprint; True: it now shares a completed answer, False: it waits, None: send it."""
        if fp is None:
            return None
        with self._lock:
            self.ledger.similar.save_fingerprint(job.content_hash, fp.key, fp.packed_means, fp.aspect, fp.blob())
            if not self.enabled or self.ledger.similar.no_reuse(job.id):
                return None
            lender = find_lender(self.ledger, self.endpoint, fp, exclude_job=job.id)
            if lender is None:
                return None
            return self.ledger.similar.share_answer(job.id, lender[0])

    def settled(self, job_id: int) -> tuple[list[int], list[Job]]:
        """After ``job_id`` settled: (jobs that now share its answer, jobs to prepare and send on their own)."""
        shared, requeued = self.ledger.similar.settle_waiters(job_id)
        return shared, self.ledger.similar.jobs_by_id(requeued)

    def resume(self) -> tuple[list[int], list[Job]]:
        """At the start of a run: settle waiters whose lender settled before (or send them, when reuse is off)."""
        if not self.enabled:
            self.ledger.similar.stop_waiting(self.endpoint)
            return [], []
        shared: list[int] = []
        requeued: list[Job] = []
        for lender in self.ledger.similar.waiting_lenders(self.endpoint):
            s, r = self.settled(lender)
            shared += s
            requeued += r
        return shared, requeued


class Prediction:
    """What a dry run expects reuse to save: contents that would share a caption, and ones that cannot be prepared."""

    def __init__(self) -> None:
        self.similar = 0
        self.unpreparable = 0
        self.elsewhere = 0  # similar to a photo another machine captioned or is sending (the shared store)

    @property
    def saved(self) -> int:
        """Credits the forecast saves: contents that share a caption here or elsewhere, or cannot be prepared."""
        return self.similar + self.unpreparable + self.elsewhere


def predict(
    ledger: Ledger,
    endpoint: str,
    to_send: Iterable[tuple[str, bytes | None]],
    preparer: Preparer,
    *,
    workers: int = 2,
    on_file: Callable[[int], None] | None = None,
    elsewhere: Callable[[str, Fingerprint], bool] | None = None,
) -> Prediction:
    """Of the contents a run would send, in the order it would claim them, count those that would share a caption.

    ``to_send`` is (content hash, a file holding it); contents the ledger has
    a fingerprint for are not decoded again. Nothing is written.
    ``elsewhere(digest, fingerprint)``: whether another machine captioned, or
    is sending, a similar photo (the shared store), asked when none is here.
    """
    result = Prediction()
    items = list(to_send)
    claimed: dict[int, list[Fingerprint]] = {}

    def fingerprint_of(item: tuple[str, bytes | None]) -> Fingerprint | None | PrepareError:
        digest, path = item
        stored = ledger.similar.fingerprint_of(digest)
        if stored is not None:
            return Fingerprint.from_blob(stored[1], stored[0])
        if path is None:
            return None  # a remote URL: nothing decoded before it is sent
        try:
            return preparer.prepare(os.fsdecode(path)).fingerprint
        except PrepareError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="fingerprint") as pool:
        for (digest, _path), fp in zip(items, pool.map(fingerprint_of, items), strict=True):
            if on_file:
                on_file(1)
            if isinstance(fp, PrepareError):
                result.unpreparable += 1  # the run fails it without a submission
                continue
            if fp is None:
                continue
            if ledger.similar.sent_alone(endpoint, digest):
                claimed.setdefault(fp.key, []).append(fp)
                continue
            if find_lender(ledger, endpoint, fp, states=_PREDICT_LENDERS) is not None:
                result.similar += 1
                continue
            if any(same_photo(fp, other) for key in fp.probes() for other in claimed.get(key, ())):
                result.similar += 1
                continue
            if elsewhere is not None and elsewhere(digest, fp):
                result.elsewhere += 1
                continue
            claimed.setdefault(fp.key, []).append(fp)
    return result
