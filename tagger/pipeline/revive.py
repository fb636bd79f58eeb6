"""``tagger retry --timeouts``: give timed-out jobs another chance, paying only when nothing else can work.

For each job settled as ``timeout`` (or ``not found``), the service is asked
about its token first; a poll and a repost cost nothing:

- the token is unknown (``not found``, or the job has none): the image is
  queued to be sent again, which costs a credit;
- the service reports ``timeout`` (or an ``unsure``/``close`` skip): the token
  is reposted and the job goes back to polling;
- the service is still working on it, or has finished meanwhile: it goes back
  to polling as it is;
- the service knows the token but refuses the repost: it stays ``timeout``
  and is counted apart (only a new submission could caption it, and that is
  paid only when the token is gone);
- the service cannot be reached: left as it was, to try again later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from tagger.client import protocol as cs  # statuses and errors: the HTTP client is the caller's
from tagger.client.retry import RateGate, RetryPolicy, call
from tagger.ledger.store import Job, JobState, Ledger

if TYPE_CHECKING:
    from tagger.client.cloudsight import API

__all__ = ["Revived", "revive_timeouts"]

log = logging.getLogger("tagger.pipeline.revive")

_REPOSTABLE = (cs.STATUS_TIMEOUT,)
_REPOST_SKIPS = (cs.REASON_UNSURE, cs.REASON_CLOSE)


@dataclass
class Revived:
    """What ``revive_timeouts`` did with each job."""

    reposted: int = 0  # re-queued at the service under the same token: no credit
    polling: int = 0  # the service still has it (working or done): polled again, no credit
    resend: int = 0  # the service no longer knows the token: sent again by the next run, a credit each
    refused: int = 0  # the service knows the token but would not repost it: left as timeout
    unreachable: int = 0  # the service could not be asked: left as they were


def _settled(ledger: Ledger, endpoint: str) -> Iterator[Job]:
    for state in (JobState.TIMEOUT, JobState.NOT_FOUND):
        after = 0
        while True:
            page = ledger.jobs_in_state(endpoint, state, 200, after)
            if not page:
                break
            yield from page
            after = page[-1].id


def revive_timeouts(
    api: API | None,
    ledger: Ledger,
    endpoint: str,
    *,
    policy: RetryPolicy = RetryPolicy(attempts=3, budget=30.0),
    roots: list[bytes] | None = None,
) -> Revived:
    """Put the endpoint's timed-out and not-found jobs (of files under ``roots``, if given) back in play.

    ``api`` None: their tokens are gone (the in-process emulator), so each is sent again.
    """
    done = Revived()
    gate = RateGate()
    jobs = list(_settled(ledger, endpoint))  # read first: the updates below move jobs out of these states
    if roots is not None:
        under = ledger.job_ids_under(roots)
        jobs = [job for job in jobs if job.id in under]
    for job in jobs:
        if api is None or not job.token or job.state is JobState.NOT_FOUND:
            ledger.resend(job.id)
            done.resend += 1
            continue
        token = job.token
        try:
            answer = call(partial(api.image_response, token), policy=policy, gate=gate)
        except cs.AuthError:
            raise
        except cs.APIError as exc:
            log.warning("could not ask the service about a timed-out job: %s", exc.description)
            done.unreachable += 1
            continue
        status = answer.get("status")
        if status == cs.STATUS_NOT_FOUND:
            ledger.resend(job.id)
            done.resend += 1
            continue
        if status in _REPOSTABLE or (status == cs.STATUS_SKIPPED and answer.get("reason") in _REPOST_SKIPS):
            try:
                call(partial(api.repost, token), policy=policy, gate=gate)
            except cs.AuthError:
                raise
            except cs.APIError as exc:
                if exc.retryable:
                    log.warning("could not repost a timed-out job: %s", exc.description)
                    done.unreachable += 1
                else:
                    done.refused += 1
                continue
            ledger.resume_token(job.id, status, reposted=True)
            done.reposted += 1
            continue
        ledger.resume_token(job.id, status, reposted=False)
        done.polling += 1
    return done
