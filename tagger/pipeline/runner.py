"""The whole run: scan -> plan -> prepare and submit -> poll -> write back -> export.

``run()`` is the library's entry point (``dryrun.dry_run()`` counts what it
would send and spend); the CLI only builds a ``Config`` and maps the outcome
to an exit status.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagger.config import Config
from tagger.display import count
from tagger.errors import EXIT_OK, EXIT_SOME_FAILED, EXIT_STOPPED
from tagger.keywords.derive import KeywordRules
from tagger.keywords.stored import warm_up
from tagger.ledger.attention import Failing, failing_files
from tagger.ledger.keys import normal_locale
from tagger.ledger.store import JobState, Ledger
from tagger.pipeline.context import EMULATOR_ENDPOINT, WalkStopped, make_api, opened
from tagger.pipeline.intake import Claimed, Intake, Stream
from tagger.pipeline.plan import Plan, StreamingPlan
from tagger.pipeline.progress import Progress
from tagger.pipeline.sharing import Sharing
from tagger.pipeline.tally import INTERRUPTED, Tally
from tagger.pipeline.urls import url_key
from tagger.shared import StoreDown
from tagger.shared.base import FileRow
from tagger.sidecars.adopt import adopt_file, adopt_from_sidecars
from tagger.sidecars.writeback import write_back

if TYPE_CHECKING:
    from tagger.client import cloudsight as cs
    from tagger.pipeline.dispatch import DispatchOptions

__all__ = ["RunResult", "run", "make_api", "EMULATOR_ENDPOINT"]

log = logging.getLogger("tagger.pipeline.runner")


@dataclass
class RunResult:
    """What a run did and how it ended."""

    plan: Plan
    tally: Tally = field(default_factory=Tally)
    sidecars_written: int = 0
    sidecar_failures: int = 0
    csv_rows: int | None = None
    credit_balance: int | None = None
    swept: int = 0
    exit_code: int = EXIT_OK
    stopped: str | None = None
    counts: dict = field(default_factory=dict)
    # Failed in an earlier run and unchanged since: named, not counted again (a nightly job can go green).
    known_failures: list[Failing] = field(default_factory=list)
    new_failures: list[Failing] = field(default_factory=list)  # failed in this run: exit status 1


def _pending_sentence(counts: dict) -> str:
    """Why files are still pending at the end of a run, in the user's words."""
    held, pending = counts.get("held", 0), counts["pending"]
    text = f"{count(pending, 'file')} still pending"
    if held:
        text += (
            f", {held} of them held: the answer to their upload was lost (resend_ambiguous = false); "
            "`tagger retry --ambiguous` sends them again, each maybe charged twice"
        )
    return text


def _params(config: Config) -> dict:
    params = {"image_request[locale]": normal_locale(config.locale)}
    if config.ttl:
        params["image_request[ttl]"] = config.ttl
    return params


def _add_urls(ledger: Ledger, urls: Sequence[str], endpoint: str) -> int:
    """Queue remote images; returns how many are new to this endpoint and locale."""
    if not urls:
        return 0
    return ledger.files.add_urls([(u, url_key(u)) for u in urls], endpoint)


def _failures(before: dict[int, Failing], after: dict[int, Failing]) -> tuple[list[Failing], list[Failing]]:
    """(known, new): a file failed before this run, unchanged and failing still, is known; any other failure is new."""
    known: list[Failing] = []
    new: list[Failing] = []
    for file_id, now in after.items():
        then = before.get(file_id)
        same = then is not None and (then.size, then.mtime_ns) == (now.size, now.mtime_ns)
        (known if same else new).append(now)
    return known, new


def _counted(p: Plan, claimed: Claimed, queue: dict[str, int], remote_new: int) -> Plan:
    """A streaming run's plan with the intake's decisions and the queue of earlier runs' jobs in."""
    p.new += remote_new
    p.adopted += claimed.adopted + queue.get("adopted_files", 0)
    p.credits = claimed.to_send + queue.get("jobs", 0) - queue.get("adopted", 0)
    return p


def _warm(rules: KeywordRules, api: cs.API) -> None:
    """Build the HTTP client (a ``LazyAPI``'s) and load the keywords' dictionary: a run that found work needs both."""
    try:
        getattr(api, "session", None)
        warm_up(rules)
    except Exception:  # the same work is done again where it is needed, and says what failed there
        log.debug("warming up failed", exc_info=True)


def _dispatch_options(config: Config, endpoint: str, max_credits: int | None) -> DispatchOptions:
    """The dispatcher's settings (imported here: a run with nothing to send never loads the dispatcher)."""
    from tagger.client.retry import RetryPolicy
    from tagger.pipeline.dispatch import DispatchOptions

    return DispatchOptions(
        endpoint=endpoint,
        params=_params(config),
        max_in_flight=config.max_in_flight,
        workers=config.workers,
        timeout_reposts=config.timeout_reposts,
        first_poll_delay=config.first_poll_delay,
        poll_interval=config.poll_interval,
        max_poll_interval=config.max_poll_interval,
        retry=RetryPolicy(
            attempts=max(1, config.retry_attempts),
            budget=config.retry_budget,
            max_retry_after=config.max_retry_after,
        ),
        stop_after_failures=max(1, config.stop_after_failures),
        max_credits=max_credits,
        requests_per_second=config.requests_per_second or None,
        resend_ambiguous=config.resend_ambiguous,
        reuse_similar=config.reuse_similar,
        job_deadline=config.job_deadline,
    )


def _publish(sharing: Sharing, ledger: Ledger, rules: object, published_from: float) -> None:
    """End of a run: this machine's files for the organisation's view; the watermark once nothing was missed."""
    from tagger.exports.readout import iter_records

    store = sharing.store
    try:
        sharing.flush()
        sharing.publish_files(
            FileRow(r.path, r.content_hash, r.status, r.caption, r.keywords)
            for r in iter_records(ledger, rules=rules)  # type: ignore[arg-type]
        )
        sharing.publish_tokens()  # jobs still out: a machine taking their claims over polls these tokens
        if not sharing.missed and not getattr(store, "lost", False):
            store.set_watermark(published_from)
    except StoreDown as exc:
        log.warning("the shared store is unreachable (%s): the next run publishes this one's answers", exc)


def run(
    config: Config,
    paths: Sequence[str],
    *,
    api: cs.API | None = None,
    endpoint_id: str | None = None,
    max_credits: int | None = None,
    progress: Progress | None = None,
    export: Callable[[Ledger], int] | None = None,
    urls: Sequence[str] = (),
    rewrite_sidecars: bool = False,
    stop: threading.Event | None = None,
    emulator_remembers: bool = False,
) -> RunResult:
    """Caption every image under ``paths``; resumable, incremental.

    ``endpoint_id`` is how the ledger names the service (defaults to the
    base URL, in its normal form); results of one endpoint, or of one
    locale, never pass for another's. The run sends, writes and counts only
    what is under ``paths`` (and ``urls``). Setting ``stop`` (from a signal
    handler, another thread) ends the run early and gracefully: exit status
    3, nothing failed, the next run resumes. ``emulator_remembers``: the
    in-process emulator kept the jobs of earlier runs (a state file), so
    their tokens are polled, not sent again. ``dry_run()`` counts what this
    would send and spend, sending nothing.
    """
    with opened(
        config, paths, dry=False, api=api, endpoint_id=endpoint_id, progress=progress, urls=urls, stop=stop
    ) as ctx:
        ledger, api, endpoint, store, progress = ctx.ledger, ctx.api, ctx.endpoint, ctx.store, ctx.progress
        rules, broots, sidecars = ctx.rules, ctx.broots, ctx.sidecars
        result = RunResult(plan=Plan())
        sharing = Sharing(store, ledger, endpoint, reuse_similar=config.reuse_similar) if store.enabled else None
        if endpoint == EMULATOR_ENDPOINT and not emulator_remembers:
            # An in-process emulator without a state file starts empty: tokens of an interrupted run died
            # with the last one. One with a state file (``emulator_remembers``) knows them, as the service.
            ledger.forget_tokens(endpoint)
        result.swept = ledger.sweep(hold=not config.resend_ambiguous)
        if result.swept:
            if config.resend_ambiguous:
                log.warning("%s interrupted while being submitted; they will be sent again", count(result.swept, "job"))
            else:
                log.warning(
                    "%s interrupted while being submitted; held (resend_ambiguous = false): "
                    "`tagger retry --ambiguous` sends them again",
                    count(result.swept, "job"),
                )
        remote_new = _add_urls(ledger, urls, endpoint)
        run_id = ledger.start_run(endpoint)
        published_from = ledger.now()
        if sharing is not None:
            # Answers a lost store missed (this machine's last runs) are published first.
            try:
                sharing.publish_missed(store.watermark())
                sharing.publish_tokens()  # tokens of the last run's jobs still out, if the store missed them
            except StoreDown:
                sharing.missed = True
        # Keywords are re-derived whenever the rules changed (write_back does it); --rewrite-sidecars then
        # writes them, with new naming, folder or parent too, into every sidecar again.
        if rewrite_sidecars:
            ledger.writes.forget(broots)
        # Captions settled in an earlier run but not yet written (a crash between the two, sidecars off, unwritable).
        written, failed = write_back(ledger, sidecars, roots=broots)
        result.sidecars_written += written
        result.sidecar_failures += failed
        progress("written", written)

        def settled(job_id: int, state: JobState) -> None:
            if state is JobState.COMPLETED:
                w, f = write_back(ledger, sidecars, job_id, roots=broots)
                result.sidecars_written += w
                result.sidecar_failures += f
                progress("written", w)
                progress("unwritten", f)
            else:
                progress("uncaptioned", 1)

        # New and changed files stream from the walk to the workers (read once: hashed, claimed, prepared);
        # the jobs earlier runs left queued, and those the walk linked, are sent once the walk is over.
        stream = Stream()
        unlinked: list[tuple[int, bytes]] = []  # adopted lent captions whose lender the walk had not reached
        intake = Intake(
            ledger,
            endpoint,
            adopt=lambda job_id, file_id, item, digest: adopt_file(
                ledger, sidecars, endpoint, job_id, file_id, item.directory, item.name, item.root, digest, unlinked
            ),
        )
        planning = StreamingPlan(
            ledger, paths, endpoint, stream, hash_workers=config.workers, on_folder=ctx.scanned, excludes=ctx.excludes
        ).start()
        progress.walk_done = lambda: not planning.running and not planning.failed  # "found" is final then
        queue: dict[str, int] = {}

        def before_queued(claimed: set[int]) -> bool:
            """Once the walk is over: scope the queue to this run's roots, take back what sidecars hold."""
            if "jobs" not in queue:
                if planning.running or planning.failed:
                    return False  # a walk cut short: only what it streamed is sent; the next run sees the rest
                queue["jobs"] = ledger.set_scope(endpoint, broots, ctx.url_keys, exclude=claimed)
                # A lost ledger: captions its sidecars still hold are taken back, not paid for again.
                queue["adopted"], queue["adopted_files"] = adopt_from_sidecars(ledger, sidecars, endpoint)
                # Every job this run will send is known now: the totals are final, the plan can be shown.
                progress.walk_over(intake.counts.to_send + queue["jobs"] - queue["adopted"])
                progress.planned(_counted(planning.preview(intake.counts), intake.counts, queue, remote_new))
            return True

        exit_code = EXIT_STOPPED
        walk_stopped = False
        try:
            try:
                if not stream.wait_started():  # the walk ended without a new file: maybe nothing to do at all
                    planning.wait()
                    before_queued(set())
                # A nightly no-op starts no worker processes (nor loads a dictionary).
                if stream.handed or (not planning.failed and ledger.outstanding(endpoint)):
                    # The client and the dictionary load while the worker processes start and read the first
                    # photo: its upload waits for the longest of them, not for all of them in turn.
                    warming = threading.Thread(target=_warm, args=(rules, api), name="tagger-warm-up", daemon=True)
                    warming.start()
                    # Imported here: a nightly no-op loads neither the dispatcher nor the preparing processes.
                    from tagger.pipeline.dispatch import Dispatcher
                    from tagger.prepare.normalise import Preparer

                    with Preparer(ctx.prep_options, processes=ctx.processes) as preparer:
                        dispatcher = Dispatcher(
                            api,
                            ledger,
                            preparer,
                            _dispatch_options(config, endpoint, max_credits),
                            on_settled=settled,
                            progress=progress,
                            stop=stop,
                            intake=intake,
                            stream=stream,
                            before_queued=before_queued,
                            sharing=sharing,
                        )
                        progress.latency = dispatcher.latency  # the ETA's median latency
                        result.tally = dispatcher.run()
                        warming.join()
            finally:
                ctx.cancelled.set()  # what the walk has not reached yet is left for the next run
                intake.left(stream.abandon())
                try:
                    planning.join()
                except WalkStopped:
                    walk_stopped = True
                intake.left(planning.left)
                for job_id, lender in unlinked:  # the lenders the walk reached after their copies
                    ledger.writes.link_lender(job_id, lender)
            result.plan = _counted(planning.finish(intake.counts), intake.counts, queue, remote_new)
            interrupted = walk_stopped or (stop is not None and stop.is_set())
            written, failed = write_back(ledger, sidecars, roots=broots)
            result.sidecars_written += written
            result.sidecar_failures += failed
            progress("written", written)
            if export is not None and not interrupted:  # a stop is quick; the next run writes the CSV
                result.csv_rows = export(ledger)
            result.credit_balance = api.credit_balance
            if sharing is not None:
                _publish(sharing, ledger, rules, published_from)
                if sharing.not_sent and not result.tally.stopped:
                    result.tally.stopped = (
                        f"the shared store was lost: {count(sharing.not_sent, 'job')} not sent (no claim); run again"
                    )
            result.counts = ledger.readout.summary(broots, remote=bool(urls))
            result.known_failures, result.new_failures = _failures(ctx.failing_before, failing_files(ledger, broots))
            result.plan.known_failures = len(result.known_failures)
            # Not an image, empty, truncated: found out while preparing (the plan had them as new or changed).
            result.plan.unreadable += sum(1 for f in result.new_failures if f.stage == "prepare")
            if interrupted:
                exit_code = EXIT_STOPPED
                result.stopped = INTERRUPTED
            elif result.counts["pending"]:
                exit_code = EXIT_STOPPED
                result.stopped = result.tally.stopped or _pending_sentence(result.counts)
            elif result.new_failures or (config.sidecars and result.counts["unwritten"]):
                exit_code = EXIT_SOME_FAILED
            else:
                exit_code = EXIT_OK
            result.exit_code = exit_code
        finally:
            progress.close()
            ledger.finish_run(run_id, exit_code, result.tally.submitted, api.credit_balance)
        return result
