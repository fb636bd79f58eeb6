"""The whole run: scan -> plan -> prepare and submit -> poll -> write back -> export.

``run()`` is the library's entry point; the CLI only builds a ``Config``
and maps the outcome to an exit status.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from tagger.client.lazy import LazyAPI
from tagger.client.retry import RetryPolicy
from tagger.config import Config, check_secret
from tagger.display import count
from tagger.errors import EXIT_OK, EXIT_SOME_FAILED, EXIT_STOPPED, UsageError
from tagger.keywords.derive import KeywordRules
from tagger.keywords.stored import keyword_rules, warm_up
from tagger.ledger.attention import Failing, failing_files, why_sent
from tagger.ledger.keys import normal_endpoint, normal_locale
from tagger.ledger.planning import HASH_SCHEME
from tagger.ledger.store import JobState, Ledger
from tagger.pipeline.dispatch import INTERRUPTED, Dispatcher, DispatchOptions, Tally
from tagger.pipeline.dryread import BoundedHasher
from tagger.pipeline.excludes import Excludes
from tagger.pipeline.intake import Claimed, Intake, Stream
from tagger.pipeline.plan import Plan, StreamingPlan, plan
from tagger.pipeline.progress import Progress
from tagger.pipeline.sharing import Sharing
from tagger.pipeline.similar import predict
from tagger.pipeline.urls import url_key
from tagger.prepare.normalise import Cancelled, PrepareOptions, Preparer
from tagger.redact import remember
from tagger.shared import StoreDown, open_store
from tagger.shared.base import FileRow
from tagger.sidecars.adopt import adopt_file, adopt_from_sidecars, preview_adoption
from tagger.sidecars.writeback import SidecarOptions, write_back

if TYPE_CHECKING:
    from tagger.client import cloudsight as cs

__all__ = ["RunResult", "run", "make_api", "EMULATOR_ENDPOINT"]

log = logging.getLogger("tagger.pipeline.runner")

#: How the ledger names the in-process emulator, whatever port it got.
EMULATOR_ENDPOINT = "emulator"


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
    dry_run: bool = False
    shared_free: int = 0  # a dry run's contents claimed or answered on another machine (the shared store)
    # Failed in an earlier run and unchanged since: named, not counted again (a nightly job can go green).
    known_failures: list[Failing] = field(default_factory=list)
    new_failures: list[Failing] = field(default_factory=list)  # failed in this run: exit status 1


def make_api(config: Config, base_url: str | None = None, *, lazy: bool = False) -> cs.API:
    """A client for the configured endpoint and credentials.

    ``lazy``: the settings are checked now, the client is built when first used (a ``LazyAPI``, which
    answers for every attribute of the client), so a run that sends nothing never imports requests.
    """
    if not config.api_key:
        raise UsageError(
            "no API key: pass --api-key, set CLOUDSIGHT_API_KEY, put api_key in the config file, "
            "or use --emulator to try tagger offline"
        )
    key = check_secret("api_key", config.api_key, "the settings")
    secret = check_secret("api_secret", config.api_secret, "the settings")
    remember(key, secret)

    def build() -> cs.API:
        from tagger.client import cloudsight as cs
        from tagger.client.deadline import use_deadline

        auth = cs.OAuth(key, secret) if secret else cs.SimpleAuth(key)
        api = cs.API(
            auth,
            base_url=base_url or config.endpoint,
            timeout=(10.0, config.request_timeout),
            pool_size=config.max_in_flight + config.workers,
        )
        # request_timeout bounds each read: a service that trickles its answer is cut off at request_deadline.
        use_deadline(api.session, config.request_deadline)
        return api

    return cast("cs.API", LazyAPI(build, base_url or config.endpoint)) if lazy else build()


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


def _add_urls(ledger: Ledger, urls: Sequence[str], endpoint: str, dry_run: bool) -> tuple[int, int]:
    """Queue remote images; returns (how many are new to this endpoint and locale, credits a dry run counts for them)."""
    if not urls:
        return 0, 0
    pairs = [(u, url_key(u)) for u in urls]
    if not dry_run:
        return ledger.files.add_urls(pairs, endpoint), 0
    states = [ledger.job_state(key, endpoint) for key in {key for _, key in pairs}]
    # A URL with no job yet, or with one still queued, costs one credit.
    return states.count(None), sum(1 for state in states if state in (None, "queued", "submitting"))


def _kind(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is, in words."""
    for test, words in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return words
    return "not a regular file"


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


def _failures(before: dict[int, Failing], after: dict[int, Failing]) -> tuple[list[Failing], list[Failing]]:
    """(known, new): a file failed before this run, unchanged and failing still, is known; any other failure is new."""
    known: list[Failing] = []
    new: list[Failing] = []
    for file_id, now in after.items():
        then = before.get(file_id)
        same = then is not None and (then.size, then.mtime_ns) == (now.size, now.mtime_ns)
        (known if same else new).append(now)
    return known, new


def _unchanged_on_disk(failing: Failing) -> bool:
    """Whether a failed file is still as it was when it failed (a dry run's stand-in for the run's own comparison)."""
    try:
        st = os.stat(os.path.join(failing.dir, failing.name))
    except OSError:
        return failing.stage == "read"  # still unreadable
    return (st.st_size, st.st_mtime_ns) == (failing.size, failing.mtime_ns)


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


class _Stopped(Exception):
    """The stop event was set while the folders were being planned."""


def _publish(sharing: Sharing, ledger: Ledger, rules: object, published_from: float) -> None:
    """End of a run: this machine's files for the organisation's view; the watermark once nothing was missed."""
    from tagger.exports.readout import iter_records

    store = sharing.store
    try:
        sharing.flush()
        rows = [
            FileRow(r.path, r.content_hash, r.status, r.caption, r.keywords)
            for r in iter_records(ledger, rules=rules)  # type: ignore[arg-type]
        ]
        for start in range(0, len(rows), 1000):
            store.publish_files(rows[start : start + 1000])
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
    dry_run: bool = False,
    max_credits: int | None = None,
    progress: Progress | None = None,
    export: Callable[[Ledger], int] | None = None,
    urls: Sequence[str] = (),
    rewrite_sidecars: bool = False,
    stop: threading.Event | None = None,
    emulator_remembers: bool = False,
    forecast_similar: bool = True,
) -> RunResult:
    """Caption every image under ``paths``; resumable, incremental.

    ``endpoint_id`` is how the ledger names the service (defaults to the
    base URL, in its normal form); results of one endpoint, or of one
    locale, never pass for another's. The run sends, writes and counts only
    what is under ``paths`` (and ``urls``). Setting ``stop`` (from a signal
    handler, another thread) ends the run early and gracefully: exit status
    3, nothing failed, the next run resumes. ``emulator_remembers``: the
    in-process emulator kept the jobs of earlier runs (a state file), so
    their tokens are polled, not sent again. ``forecast_similar=False``: a
    dry run does not decode what it would send to find photos similar to
    others (quicker; its credits are then an upper bound).
    """
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"{p} does not exist")
        if not (os.path.isdir(p) or os.path.isfile(p)):
            # A named pipe would hang a read (or be walked as nothing, exit 0): refused, with what it is.
            raise UsageError(f"{p} is {_kind(os.stat(p).st_mode)}, not a photo or a folder; give photos or folders")
    # Read the vocabulary first: a broken one stops the run before anything is sent.
    rules = keyword_rules(config.vocabulary, config.unmapped, config.locale, config.keyword_parent)
    progress = progress or Progress(enabled=False)
    broots = [os.path.abspath(os.fsencode(p)) for p in paths]
    # What no one wants captioned (NAS thumbnails, trash), the user's patterns, tagger's own sidecar folder.
    excludes = Excludes(config.exclude, own_folders=(config.sidecar_dir,) if config.sidecar_dir else ())
    with ExitStack() as stack:
        ledger = stack.enter_context(
            Ledger(
                config.ledger_path if not dry_run or os.path.exists(config.ledger_path) else ":memory:",
                locale=config.locale,
            )
        )
        if not dry_run:
            ledger.acquire()
        api = api or stack.enter_context(make_api(config, lazy=True))
        endpoint = normal_endpoint(endpoint_id or api.base_url)
        result = RunResult(plan=Plan(), dry_run=dry_run)
        # Before anything is sent: an unusable shared store stops the run here (exit 2).
        store = open_store(
            config.shared_url,
            required=config.shared_required,
            machine=config.shared_machine,
            ledger_path=config.ledger_path,
            endpoint=endpoint,
            locale=ledger.locale,
            scheme=HASH_SCHEME,
            lease=config.shared_lease,
        )
        stack.callback(store.close)
        sharing = Sharing(store, ledger, endpoint, reuse_similar=config.reuse_similar) if store.enabled else None
        failing_before = failing_files(ledger, broots)
        if not dry_run:
            if endpoint == EMULATOR_ENDPOINT and not emulator_remembers:
                # An in-process emulator without a state file starts empty: tokens of an interrupted run died
                # with the last one. One with a state file (``emulator_remembers``) knows them, as the service.
                ledger.forget_tokens(endpoint)
            result.swept = ledger.sweep(hold=not config.resend_ambiguous)
            if result.swept:
                if config.resend_ambiguous:
                    log.warning(
                        "%s interrupted while being submitted; they will be sent again", count(result.swept, "job")
                    )
                else:
                    log.warning(
                        "%s interrupted while being submitted; held (resend_ambiguous = false): "
                        "`tagger retry --ambiguous` sends them again",
                        count(result.swept, "job"),
                    )
        remote_new, remote_credits = _add_urls(ledger, urls, endpoint, dry_run)
        cancelled = threading.Event()  # the run ended while the walk went on: it stops at the next folder

        def scanned(n: int) -> None:
            progress("scanned", n)
            if (stop is not None and stop.is_set()) or cancelled.is_set():
                raise _Stopped  # between two folders: each folder's changes are already committed

        sidecars = SidecarOptions(
            config.sidecars,
            config.sidecar_dir or None,
            config.sidecar_naming,
            config.keyword_parent,
            rules=rules,
            locale=config.locale,
            hold=config.hold,
            # Two roots in one mirror would map A/IMG_0001.JPG and B/IMG_0001.JPG onto one sidecar.
            per_root=len(broots) > 1,
        )
        url_keys = [url_key(u) for u in urls]
        prep_options = PrepareOptions(
            max_edge=config.max_edge,
            quality=config.quality,
            max_pixels=config.max_pixels,
            send_location=config.send_location,
            time_limit=config.prepare_time_limit,
            read_metadata=config.sidecars,
        )
        processes = config.workers if config.prepare_in_processes else 0
        if dry_run:
            # Files are read as the real run reads them: in worker processes, under prepare_time_limit.
            hasher = stack.enter_context(closing(BoundedHasher(prep_options, processes, stop)))
            try:
                result.plan = plan(
                    ledger,
                    paths,
                    endpoint,
                    dry_run=True,
                    hash_workers=config.workers,
                    on_folder=scanned,
                    hasher=hasher,
                    excludes=excludes,
                )
                result.plan.new += remote_new
                ledger.set_scope(endpoint, broots, url_keys)
                adopted, result.plan.adopted = preview_adoption(ledger, sidecars, endpoint, result.plan._hashed)
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
                forecast = None
                if config.reuse_similar and to_decode and forecast_similar:
                    # The run decodes every image it sends and reuses what is similar: so does its forecast.
                    forecast = predict(ledger, endpoint, to_decode, hasher.preparer, workers=config.workers)
                    result.plan.similar = forecast.similar
                    result.plan.credits -= forecast.similar + forecast.unpreparable
            except (_Stopped, Cancelled):
                progress.close()
                result.exit_code, result.stopped = EXIT_STOPPED, INTERRUPTED
                return result
            if stop is not None and stop.is_set():  # a stop cut a read short: the counts would mislead
                progress.close()
                result.exit_code, result.stopped = EXIT_STOPPED, INTERRUPTED
                return result
            result.plan.credits += remote_credits - len(adopted)
            result.plan.unreadable += forecast.unpreparable if forecast is not None else 0
            result.plan.why = _why(
                ledger,
                endpoint,
                result.plan,
                [digest for digest, _ in to_decode],
                (forecast.similar + forecast.unpreparable) if forecast is not None else 0,
                remote_credits,
            )
            result.known_failures = [f for f in failing_before.values() if _unchanged_on_disk(f)]
            result.plan.known_failures = len(result.known_failures)
            result.credit_balance = ledger.last_balance(endpoint)
            return result
        run_id = ledger.start_run(endpoint)
        published_from = ledger.now()
        if sharing is not None:
            # Answers a lost store missed (this machine's last runs) are published first.
            try:
                sharing.publish_missed(store.watermark())
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
            ledger, paths, endpoint, stream, hash_workers=config.workers, on_folder=scanned, excludes=excludes
        ).start()
        progress.walk_done = lambda: not planning.running and not planning.failed  # "found" is final then
        queue: dict[str, int] = {}

        def before_queued(claimed: set[int]) -> bool:
            """Once the walk is over: scope the queue to this run's roots, take back what sidecars hold."""
            if "jobs" not in queue:
                if planning.running or planning.failed:
                    return False  # a walk cut short: only what it streamed is sent; the next run sees the rest
                queue["jobs"] = ledger.set_scope(endpoint, broots, url_keys, exclude=claimed)
                # A lost ledger: captions its sidecars still hold are taken back, not paid for again.
                queue["adopted"], queue["adopted_files"] = adopt_from_sidecars(ledger, sidecars, endpoint)
                # Every job this run will send is known now: the totals are final, the plan can be shown.
                progress.walk_over(intake.counts.to_send + queue["jobs"] - queue["adopted"])
                progress.planned(_counted(planning.preview(intake.counts), intake.counts, queue, remote_new))
            return True

        options = DispatchOptions(
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
                    with Preparer(prep_options, processes=processes) as preparer:
                        dispatcher = Dispatcher(
                            api,
                            ledger,
                            preparer,
                            options,
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
                cancelled.set()  # what the walk has not reached yet is left for the next run
                intake.left(stream.abandon())
                try:
                    planning.join()
                except _Stopped:
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
            result.known_failures, result.new_failures = _failures(failing_before, failing_files(ledger, broots))
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
