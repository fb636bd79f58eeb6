"""The dry run: what a run would do and spend, counted without sending anything or writing a sidecar.

``dry_run()`` walks and hashes as the real run does (in worker processes,
under ``prepare_time_limit``), previews what sidecars would adopt and what
the shared store already knows, forecasts the photos similar to captioned
ones, and says why each credit would be spent.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagger.config import Config
from tagger.errors import EXIT_OK, EXIT_STOPPED
from tagger.ledger.attention import Failing, why_sent
from tagger.ledger.store import Ledger
from tagger.pipeline.context import RunContext, WalkStopped, opened
from tagger.pipeline.dryread import BoundedHasher
from tagger.pipeline.plan import Plan, plan
from tagger.pipeline.progress import Progress
from tagger.pipeline.similar import Prediction, predict
from tagger.pipeline.tally import INTERRUPTED
from tagger.pipeline.urls import url_key
from tagger.prepare.fingerprint import Fingerprint
from tagger.prepare.normalise import Cancelled
from tagger.shared.base import SharedStore, StoreDown
from tagger.sidecars.adopt import preview_adoption

if TYPE_CHECKING:
    from tagger.client import cloudsight as cs

__all__ = ["DryRunResult", "dry_run"]


@dataclass
class DryRunResult:
    """What a run would do and spend (``plan``), and how the count ended."""

    plan: Plan = field(default_factory=Plan)
    exit_code: int = EXIT_OK  # EXIT_STOPPED when a stop cut the count short: the plan is then partial
    stopped: str | None = None
    shared_free: int = 0  # contents claimed or answered on another machine (the shared store): no credit
    # Failed in an earlier run and unchanged since: a run would name them, not count them again.
    known_failures: list[Failing] = field(default_factory=list)
    credit_balance: int | None = None  # the balance the service reported at the last run


def _url_credits(ledger: Ledger, urls: Sequence[str], endpoint: str) -> tuple[int, int]:
    """Remote images: (how many are new to this endpoint and locale, the credits they would cost)."""
    if not urls:
        return 0, 0
    states = [ledger.job_state(key, endpoint) for key in {url_key(u) for u in urls}]
    # A URL with no job yet, or with one still queued, costs one credit.
    return states.count(None), sum(1 for state in states if state in (None, "queued", "submitting"))


def _why(ledger: Ledger, endpoint: str, p: Plan, to_send: list[str], saved: int, remote: int) -> dict[str, int]:
    """Why each credit of a dry run's plan would be spent: reason -> credits (they add up to ``p.credits``)."""
    reasons = why_sent(ledger, endpoint, sorted(set(to_send)))
    why: Counter[str] = Counter(reasons.get(digest, "new") for digest in to_send)
    unknown = why.pop("new", 0)  # never captioned: the plan knows how many are changed files
    why["changed"] = min(p.changed, unknown)
    why["new"] = unknown - why["changed"]
    for reason in ("new", "changed", "endpoint", "locale", "retry", "queued"):  # similar, unpreparable: no credit
        take = min(saved, why[reason])
        why[reason] -= take
        saved -= take
    why["url"] = remote
    order = ("new", "changed", "endpoint", "locale", "retry", "queued", "url")
    return {reason: why[reason] for reason in order if why[reason] > 0}


def _unchanged_on_disk(failing: Failing) -> bool:
    """Whether a failed file is still as it was when it failed (a dry run's stand-in for the run's own comparison)."""
    try:
        st = os.stat(os.path.join(failing.dir, failing.name))
    except OSError:
        return failing.stage == "read"  # still unreadable
    return (st.st_size, st.st_mtime_ns) == (failing.size, failing.mtime_ns)


def _stopped(ctx: RunContext, result: DryRunResult) -> DryRunResult:
    """A count cut short: exit status 3 and no plan worth showing."""
    ctx.progress.close()
    result.exit_code, result.stopped = EXIT_STOPPED, INTERRUPTED
    return result


def dry_run(
    config: Config,
    paths: Sequence[str],
    *,
    api: cs.API | None = None,
    endpoint_id: str | None = None,
    progress: Progress | None = None,
    urls: Sequence[str] = (),
    stop: threading.Event | None = None,
    forecast_similar: bool = True,
) -> DryRunResult:
    """Count what ``run()`` would send and spend for ``paths`` (and ``urls``); send nothing, write no sidecar.

    The ledger is read, not locked; without one the count is made in
    memory. ``api`` is not called (an offline stand-in will do); it names
    the endpoint unless ``endpoint_id`` does. Setting ``stop`` ends the count
    early: exit status 3, ``stopped`` says so, the plan is partial.
    ``forecast_similar=False``: the images are not decoded to find photos
    similar to others (quicker; the credits are then an upper bound).
    """
    with opened(
        config, paths, dry=True, api=api, endpoint_id=endpoint_id, progress=progress, urls=urls, stop=stop
    ) as ctx:
        ledger, endpoint, store = ctx.ledger, ctx.endpoint, ctx.store
        result = DryRunResult()
        remote_new, remote_credits = _url_credits(ledger, urls, endpoint)
        # Files are read as the real run reads them: in worker processes, under prepare_time_limit.
        with closing(BoundedHasher(ctx.prep_options, ctx.processes, stop)) as hasher:
            forecast: Prediction | None = None
            try:
                result.plan = plan(
                    ledger,
                    paths,
                    endpoint,
                    dry_run=True,
                    hash_workers=config.workers,
                    on_folder=ctx.scanned,
                    hasher=hasher,
                    excludes=ctx.excludes,
                )
                result.plan.new += remote_new
                ledger.set_scope(endpoint, ctx.broots, ctx.url_keys)
                adopted, result.plan.adopted = preview_adoption(ledger, ctx.sidecars, endpoint, result.plan._hashed)
                # Content another machine claimed or answered costs this one nothing.
                elsewhere = (
                    store.known([d for d, _ in result.plan._to_send if d not in adopted]) if store.enabled else set()
                )
                result.shared_free = len(elsewhere)
                result.plan.credits -= len(elsewhere)
                # An adopted content is settled before anything is decoded: it neither shares nor lends a caption.
                to_decode = [
                    (digest, source)
                    for digest, source in result.plan._to_send
                    if digest not in adopted and digest not in elsewhere
                ]
                if config.reuse_similar and to_decode and forecast_similar:
                    # The run decodes every image it sends and reuses what is similar: so does its forecast.
                    forecast = predict(
                        ledger,
                        endpoint,
                        to_decode,
                        hasher.preparer,
                        workers=config.workers,
                        elsewhere=_lent_elsewhere(store) if store.enabled else None,
                    )
                    result.plan.similar = forecast.similar
                    result.shared_free += forecast.elsewhere
                    result.plan.credits -= forecast.saved
            except (WalkStopped, Cancelled):
                return _stopped(ctx, result)
            if stop is not None and stop.is_set():  # a stop cut a read short: the counts would mislead
                return _stopped(ctx, result)
            result.plan.credits += remote_credits - len(adopted)
            result.plan.unreadable += forecast.unpreparable if forecast is not None else 0
            result.plan.why = _why(
                ledger,
                endpoint,
                result.plan,
                [digest for digest, _ in to_decode],
                forecast.saved if forecast is not None else 0,
                remote_credits,
            )
            result.known_failures = [f for f in ctx.failing_before.values() if _unchanged_on_disk(f)]
            result.plan.known_failures = len(result.known_failures)
            result.credit_balance = ledger.last_balance(endpoint)
            return result


def _lent_elsewhere(store: SharedStore) -> Callable[[str, Fingerprint], bool]:
    """Whether another machine captioned, or is sending, a photo similar to this one (a lost store: no)."""

    def ask(digest: str, fp: Fingerprint) -> bool:
        try:
            return store.lender_elsewhere(digest, fp.aspect, fp.blob(), fp.probes()) is not None
        except StoreDown:
            return False

    return ask
