"""The ``tagger`` command: parse, call one library function, map errors.

Exit status: 0 every file settled (files that failed in an earlier run and
are unchanged are known failures: named, not counted); 1 finished, some
files failed in this run; 2 usage or configuration error (every problem
listed, nothing sent); 3 stopped early (a signal, also a second one while
exiting; the credit cap; "no" at the confirmation): a re-run resumes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, cast

import click

from tagger import __version__
from tagger.client.protocol import APIError
from tagger.config import Config, load_config
from tagger.display import count, display, iso
from tagger.errors import EXIT_OK, EXIT_STOPPED, EXIT_USAGE, TaggerError, UsageError
from tagger.exports.profile_names import PROFILE_NAMES
from tagger.outpaths import refuse_clobber
from tagger.redact import RedactFilter, redact

if TYPE_CHECKING:
    from tagger.client import cloudsight as cs
    from tagger.ledger.store import Ledger
    from tagger.pipeline.dryrun import DryRunResult

__all__ = ["main", "cli"]

log = logging.getLogger("tagger")

#: The export profiles, for help texts (the profiles themselves load with the writers, when used).
_PROFILES = ", ".join(PROFILE_NAMES)


def _setup_logging(quiet: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("tagger: %(message)s"))
    handler.addFilter(RedactFilter())  # the configured key and secret never reach the terminal or a cron mail
    root = logging.getLogger("tagger")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        ctx.ensure_object(dict)
        ctx.find_root().obj["config"] = value
    return value


#: ``--config`` after the command too (``tagger run --config FILE ...``), as scripts write it.
config_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    expose_value=False,
    is_eager=True,
    callback=_remember_config,
    help="TOML config file (see config.example.toml).",
)


def _config(ctx: click.Context, flags: dict[str, Any]) -> Config:
    return load_config(ctx.obj.get("config"), flags)


def _keyword_rules(config: Config) -> Callable[[], Any]:
    """The configured keyword rules, read only if a job has no stored keywords yet."""
    from tagger.keywords.stored import keyword_rules

    return lambda: keyword_rules(config.vocabulary, config.unmapped, config.locale, config.keyword_parent)


def _ledger(config: Config) -> Ledger:
    """The configured ledger, made if need be (imported here: `tagger --help` needs no ledger)."""
    from tagger.ledger.store import Ledger

    return Ledger(config.ledger_path, locale=config.locale)


def _open_ledger(config: Config) -> Ledger:
    path = config.ledger_path
    if not os.path.exists(path):
        raise UsageError(f"no ledger at {path}: run `tagger run` first, or pass --ledger")
    return _ledger(config)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tagger")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="TAGGER_CONFIG",
    help="TOML config file (see config.example.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, debug: bool) -> None:
    """Caption photo archives through the CloudSight API: XMP sidecars and CSV, resumable.

    Only `run` spends credits (one per image sent); each command's --help says what it costs.
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_file
    ctx.obj["debug"] = debug


@cli.command()
@config_option
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--urls",
    "urls_file",
    type=click.Path(dir_okay=False),
    help="Also caption the images at these URLs (one per line, or a CSV 'url' column).",
)
@click.option("--endpoint", help="Service base URL (default https://api.cloudsight.ai/v1).")
@click.option("--api-key", help="API key (better: CLOUDSIGHT_API_KEY).")
@click.option("--api-secret", help="API secret: use OAuth1 instead of the plain key.")
@click.option(
    "--ledger",
    type=click.Path(dir_okay=False),
    help="Ledger file (default: the user data folder, ~/.local/share/tagger/ledger.sqlite on Linux).",
)
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), help="Write the caption CSV here at the end of the run."
)
@click.option("--csv-profile", help=f"CSV profile: {_PROFILES}.")
@click.option("--sidecar-dir", type=click.Path(file_okay=False), help="Write sidecars into a mirror of the tree here.")
@click.option("--no-sidecars", is_flag=True, help="Do not write XMP sidecars.")
@click.option(
    "--hold",
    is_flag=True,
    default=None,
    help="Hold new captions for a person's review (`tagger review`); no sidecar until approved and applied.",
)
@click.option(
    "--rewrite-sidecars",
    is_flag=True,
    help="Write every caption into its sidecar again (after changing the vocabulary or sidecar settings); sends nothing.",
)
@click.option("--workers", type=int, help="Threads preparing and submitting images.")
@click.option("--max-in-flight", type=int, help="Jobs submitted and not yet settled, at most.")
@click.option("--max-credits", type=int, help="Stop submitting after this many new submissions (exit 3).")
@click.option("--emulator", is_flag=True, help="Use a CloudSight emulator started in-process (offline trial).")
@click.option("--emulator-latency", default="0.2-0.5", show_default=True, help="With --emulator: seconds per job, A-B.")
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    help="Leave out files and folders matching this gitignore-style pattern (repeatable; adds to [scan] exclude).",
)
@click.option("--dry-run", is_flag=True, help="Print what the run would do and spend; send nothing.")
@click.option(
    "--shared",
    "shared_url",
    metavar="URL",
    help="Share claims and captions with other machines through this PostgreSQL store (better: TAGGER_SHARED_URL).",
)
@click.option("--yes", is_flag=True, help="Do not ask before spending more than confirm_above credits.")
@click.option("--quiet", is_flag=True, help="Print only a one-line summary (for cron).")
@click.pass_context
def run(
    ctx: click.Context,
    paths: tuple[str, ...],
    urls_file: str | None,
    emulator: bool,
    emulator_latency: str,
    dry_run: bool,
    quiet: bool,
    max_credits: int | None,
    csv_path: str | None,
    no_sidecars: bool,
    rewrite_sidecars: bool,
    excludes: tuple[str, ...],
    yes: bool,
    **flags: Any,
) -> None:
    """Caption every image under PATHS, or listed by --urls (resumes; skips what is done).

    Costs one credit per image content sent: new or changed images, and jobs
    `tagger retry` queued to be sent again. Unchanged, moved or copied files,
    polls and reposts cost nothing; --dry-run sends nothing and prints the
    credits a run would spend.

    Ctrl-C or SIGTERM stops gracefully (exit 3, nothing failed; a second
    signal quits at once); the same command resumes.
    """
    from tagger.pipeline.progress import Progress
    from tagger.pipeline.runner import EMULATOR_ENDPOINT, make_api
    from tagger.pipeline.runner import run as run_pipeline
    from tagger.pipeline.tally import STOP_GRACE
    from tagger.pipeline.urls import read_urls
    from tagger.stopping import StopOnSignals

    _setup_logging(quiet, ctx.obj["debug"])
    if not paths and not urls_file:
        raise UsageError("say what to caption: one or more folders or photos, or --urls FILE")
    urls = read_urls(os.path.expanduser(urls_file)) if urls_file else []
    paths = tuple(os.path.expanduser(p) for p in paths)
    flags["csv"] = csv_path
    if no_sidecars:
        flags["sidecars"] = False
    config, latency = _checked_run_config(ctx, flags, paths, max_credits, dry_run, emulator, emulator_latency)
    if excludes:
        config = config.replace(exclude=config.exclude + excludes)
    # Before anything is sent or written: an output over a photo, the ledger or a sidecar would destroy it.
    refuse_clobber(config.csv, option="--csv", ledger=config.ledger_path, roots=paths)
    with_emulator = None
    endpoint_id = None
    if emulator:
        from tagger.emulator import Emulator

        with_emulator = _start_emulator(Emulator, latency, None if dry_run else _emulator_state(config.ledger_path))
        config = config.replace(api_key=with_emulator.key, api_secret=with_emulator.secret, endpoint=with_emulator.url)
        if flags.get("first_poll_delay") is None and not _configured(ctx, "first_poll_delay"):
            config = config.replace(first_poll_delay=max(0.2, latency[0]))
        endpoint_id = EMULATOR_ENDPOINT
        log.info("using the built-in emulator at %s (its captions are not CloudSight's)", with_emulator.url)
    try:
        api = None if dry_run and not config.api_key else make_api(config, lazy=True)
        export = _csv_exporter(config) if config.csv else None
        if not dry_run and not yes and _on_a_terminal():
            _confirm_spending(ctx, config, paths, urls, api or _offline_api(config), endpoint_id)
        # Not quiet: the plan line as soon as the walk is over (before the queue is sent), bars or periodic lines.
        progress = Progress(
            enabled=not quiet,
            interval=config.progress_interval,
            on_plan=None if quiet else lambda p: click.echo(_plan_words(p)),
        )
        with StopOnSignals(STOP_GRACE) as stopping:
            if dry_run:
                from tagger.pipeline.dryrun import dry_run as count_plan

                counted = count_plan(
                    config,
                    list(paths),
                    api=api or _offline_api(config),
                    endpoint_id=endpoint_id,
                    progress=progress,
                    urls=urls,
                    stop=stopping.event,
                )
            else:
                result = run_pipeline(
                    config,
                    list(paths),
                    api=api or _offline_api(config),
                    endpoint_id=endpoint_id,
                    max_credits=max_credits,
                    progress=progress,
                    export=export,
                    urls=urls,
                    rewrite_sidecars=rewrite_sidecars,
                    stop=stopping.event,
                    emulator_remembers=with_emulator is not None and with_emulator.remembers,
                )
    finally:
        if with_emulator is not None:
            with_emulator.stop()
            if with_emulator.state:
                log.info("built-in emulator: %s", with_emulator.stopped_words())
    if dry_run:
        _dry_run_words(ctx, counted, config, stopping.signal_name)
        return
    if stopping.signal_name and result.stopped:
        result.stopped = f"{result.stopped} by {stopping.signal_name}; run the same command again to resume"
    if not quiet and not progress.plan_shown:  # a run stopped before its walk was over: the counts it has
        click.echo(_plan_words(result.plan))  # the same counts the dry run printed
    elif not quiet and progress.shown_plan != result.plan.as_dict():
        # Files found unreadable while they were prepared, after the walk: the plan as it ended.
        click.echo("final " + _plan_words(result.plan))
    _summary(result, quiet)
    if config.hold and not quiet:
        _awaiting(config)
    ctx.exit(result.exit_code)


def _dry_run_words(ctx: click.Context, counted: DryRunResult, config: Config, signal_name: str | None) -> None:
    """Print what a dry run counted; a count a signal cut short is not shown (exit 3)."""
    if counted.stopped:  # interrupted while counting: a partial plan would mislead
        click.echo(f"plan: interrupted by {signal_name or 'a signal'} before the count was complete; nothing was sent")
        ctx.exit(counted.exit_code)
    click.echo(
        _plan_words(counted.plan)
        + f"; {_spending(counted.plan, config)}"
        + f"; {counted.plan.similar} similar to a captioned photo (its caption reused, no credit)"
        + (f"; {counted.shared_free} claimed or captioned on another machine (no credit)" if config.shared_url else "")
        + (f" (balance {counted.credit_balance} at the last run)" if counted.credit_balance is not None else "")
    )


def _awaiting(config: Config) -> None:
    """Say how many captions wait for a person, and how to decide on them."""
    from tagger.ledger.review import ReviewFilter

    with _ledger(config) as db:
        waiting = db.reviews.count(ReviewFilter())["awaiting"]
    if waiting:
        click.echo(
            f"{count(waiting, 'caption')} await review (no sidecar yet): `tagger review` or `tagger review --export FILE.csv`,"
            " then `tagger apply`"
        )


def _emulator_state(ledger_path: str) -> str:
    """The built-in emulator's state file: beside the ledger, so a resumed run finds the jobs it left there."""
    return os.path.splitext(ledger_path)[0] + ".emulator.sqlite"


def _start_emulator(emulator_type: Any, latency: tuple[float, float], state: str | None) -> Any:
    """A started built-in emulator keeping its jobs in ``state`` (None: in memory); busy state is exit 3."""
    from tagger.emulator import StateFileBusy
    from tagger.errors import LedgerLocked

    try:
        return emulator_type(latency=latency, state=state).start()
    except StateFileBusy as exc:
        raise LedgerLocked(f"{exc}: another `tagger run --emulator` on this ledger is running") from None


def _retry_cost(queued: int, unsent: int, emulator: bool) -> str:
    """What the jobs `tagger retry` queued will cost when sent."""
    if emulator:
        return "the built-in emulator charges no real credit"
    if unsent and unsent >= queued:
        return "they failed before they were sent (unreadable, not an image): no credit unless they can now be read"
    if unsent:
        return (
            f"a credit each, except {unsent} that failed before they were sent "
            "(unreadable, not an image): no credit unless they can now be read"
        )
    return "a credit each"


def _on_a_terminal() -> bool:
    """Whether someone is there to answer (cron, pipes and scripts never are)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirm_spending(
    ctx: click.Context,
    config: Config,
    paths: tuple[str, ...],
    urls: list[str],
    api: cs.API,
    endpoint_id: str | None,
) -> None:
    """On a terminal: count first (sends nothing); above ``confirm_above`` credits, show the plan and ask."""
    from tagger.pipeline.dryrun import dry_run

    preview = dry_run(config, list(paths), api=api, endpoint_id=endpoint_id, urls=urls, forecast_similar=False)
    if preview.stopped or preview.plan.credits <= config.confirm_above:
        return
    click.echo(_plan_words(preview.plan) + f"; {_spending(preview.plan, config, upper_bound=True)}")
    question = (
        f"This run may spend up to {count(preview.plan.credits, 'credit')} (more than confirm_above = "
        f"{config.confirm_above}). Go on?"
    )
    if not click.confirm(question, default=False):
        click.echo("nothing was sent (--yes answers this question; a run without a terminal never asks)")
        ctx.exit(EXIT_STOPPED)


def _checked_run_config(
    ctx: click.Context,
    flags: dict[str, Any],
    paths: tuple[str, ...],
    max_credits: int | None,
    dry_run: bool,
    emulator: bool,
    emulator_latency: str,
) -> tuple[Config, tuple[float, float]]:
    """The run's settings, once every option, setting, path and file it needs is checked: all problems at once."""
    from tagger.pipeline.preflight import check_paths, check_run, raise_problems

    problems: list[str] = []
    latency = (0.0, 0.0)
    if emulator:
        from tagger.emulator import parse_latency

        try:
            latency = parse_latency(emulator_latency)
        except ValueError as exc:
            problems.append(f"--emulator-latency: {exc}")
    try:
        config = _config(ctx, flags)
    except UsageError as exc:  # the settings are unusable: what can be checked without them still is
        problems[:0] = getattr(exc, "problems", [str(exc)])
        problems += check_paths(paths)
        if max_credits is not None and max_credits < 0:
            problems.append(f"--max-credits must be 0 or more, not {max_credits}")
        raise_problems(problems)
        raise
    problems += check_run(config, paths, max_credits=max_credits, dry_run=dry_run, need_key=not emulator)
    raise_problems(problems)
    return config, latency


def _plan_words(p: Any) -> str:
    """What the plan found, in the words both the dry run and the real run print (a move is not also missing)."""
    return (
        f"plan: {p.new} new, {p.changed} changed, {p.moved} moved, {p.copied} copied, {p.missing} missing, "
        f"{p.unchanged} unchanged, {p.unreadable} unreadable, {p.paired} RAW captioned from their JPEG, "
        f"{p.adopted} adopted from their sidecars"
        + (f", {p.excluded} left out by exclude patterns" if p.excluded else "")
        + (f", {count(p.known_failures, 'known failure')}" if p.known_failures else "")
    )


#: Why a credit would be spent, in the dry run's and the confirmation's words.
_WHY = {
    "new": "for new pictures",
    "changed": "for changed pixels",
    "endpoint": "for photos captioned only at another endpoint (each endpoint's captions are kept apart)",
    "locale": "for photos captioned only in another locale",
    "retry": "for retries (`tagger retry`, answers lost)",
    "queued": "for jobs an earlier run queued and did not send",
    "url": "for remote images (--urls)",
}


def _spending(p: Any, config: Config, *, upper_bound: bool = False) -> str:
    """``N credits would be spent: why each`` (the reasons add up to N)."""
    text = f"{'up to ' if upper_bound else ''}{count(p.credits, 'credit')} would be spent"
    if p.why:
        text += ": " + ", ".join(f"{n} {_WHY.get(reason, reason)}" for reason, n in p.why.items())
    if p.credits and not config.reuse_similar:
        text += " (reuse_similar = false: a copy or resized version of a captioned photo is paid for too)"
    return text


def _known_failures(result: Any) -> str:
    """The summary's words for files that failed before and are unchanged: named, not counted as new trouble."""
    known = result.known_failures
    if not known:
        return ""
    from tagger.display import display

    names = ", ".join(f"{display(os.path.join(f.dir, f.name))} ({f.reason or 'failed'})" for f in known[:10])
    more = f" and {len(known) - 10} more" if len(known) > 10 else ""
    return (
        f"; {count(len(known), 'known failure')} (failed before, unchanged since; `tagger status` lists them, "
        f"a changed file is tried again): {names}{more}"
    )


def _configured(ctx: click.Context, key: str) -> bool:
    """True when the config file sets ``key`` (so --emulator keeps the user's choice)."""
    path = ctx.obj.get("config")
    if not path:
        return False
    import tomllib

    with open(os.path.expanduser(path), "rb") as f:
        return any(key in section for section in tomllib.load(f).values() if isinstance(section, dict))


def _offline_api(config: Config) -> cs.API:
    """A client that is never called: a dry run without a key sends nothing (nor imports the HTTP client)."""
    from tagger.client.lazy import LazyAPI

    def build() -> cs.API:
        from tagger.client import cloudsight

        return cloudsight.API(cloudsight.SimpleAuth(""), base_url=config.endpoint)

    return cast("cs.API", LazyAPI(build, config.endpoint))


def _csv_exporter(config: Config) -> Callable[[Ledger], int]:
    from tagger.exports.readout import iter_records
    from tagger.exports.writer import write_export

    return lambda ledger: write_export(
        iter_records(ledger, rules=_keyword_rules(config)), config.csv, profile=config.csv_profile
    )


def _summary(result: Any, quiet: bool) -> None:
    t, p, c = result.tally, result.plan, result.counts
    line = (
        f"new {p.new + p.changed}, submitted {t.submitted}, captioned {t.completed}, skipped {t.skipped}, "
        f"timeout {t.timeout}, failed {len(result.new_failures)}, credits {t.submitted}"
    )
    if result.credit_balance is not None:
        line += f" (balance {result.credit_balance})"
    if c.get("unwritten"):  # exit 1 with nothing failed: the summary says what the trouble is
        line += f"; {count(c['unwritten'], 'sidecar')} could not be written (`tagger status` says why; tried again next run)"
    if t.reused:
        line += f"; {t.reused} similar to a captioned photo, its caption reused (no credit)"
    if t.shared:
        line += f"; {t.shared} captioned by another machine (shared store, no credit)"
    if t.possible_duplicates:
        line += f"; {count(t.possible_duplicates, 'upload')} may have been charged twice (sent again after the answer was lost)"
    if t.held:
        line += f"; {t.held} held after a lost answer (`tagger retry --ambiguous` sends them again)"
    if t.invalid_answers:
        line += f"; {t.invalid_answers} answers of the service refused as invalid (see `tagger status`)"
    line += _known_failures(result)
    if result.stopped:
        line += f"; stopped: {result.stopped}"
    click.echo(redact(line))
    if not quiet:
        click.echo(
            f"files: {c.get('total', 0)} total, {c.get('completed', 0)} completed, {c.get('skipped', 0)} skipped, "
            f"{c.get('failed', 0)} failed, {c.get('pending', 0)} pending, {c.get('unwritten', 0)} unwritten; "
            f"sidecars written {result.sidecars_written}"
            + (f", adopted from sidecars {p.adopted}" if p.adopted else "")
            + (f", CSV rows {result.csv_rows}" if result.csv_rows is not None else "")
        )


@cli.command()
@config_option
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--shared", "shared", is_flag=True, help="Count every machine's files in the shared store instead.")
@click.pass_context
def status(ctx: click.Context, ledger: str | None, as_json: bool, shared: bool) -> None:
    """Count files by status, and failures and skips by reason. Costs nothing (reads the ledger)."""
    from tagger.display import display
    from tagger.ledger.attention import failing_files

    config = _config(ctx, {"ledger": ledger})
    if shared:
        _shared_status(_shared_url(config), as_json)
        return
    with _open_ledger(config) as db:
        summary = db.readout.summary()
        failing = sorted(failing_files(db).values(), key=lambda f: (f.dir, f.name))
        orphans = _orphans(db)
    if as_json:
        summary["failed_files"] = [
            {"path": display(os.path.join(f.dir, f.name)), "reason": f.reason, "sent": f.sent} for f in failing
        ]
        summary["orphaned_sidecars"] = [display(p) for p in orphans]
        click.echo(json.dumps(summary, sort_keys=True))
        return
    held = f", {summary['held']} of them held" if summary["held"] else ""
    click.echo(
        f"{summary['total']} files: {summary['completed']} completed, {summary['skipped']} skipped, "
        f"{summary['timeout']} timeout, {summary['not found']} not found, {summary['failed']} failed, "
        f"{summary['pending']} pending{held}, {summary['unwritten']} unwritten ({summary['missing']} missing from disk)"
    )
    click.echo(
        f"possible duplicates: {count(summary['possible_duplicates'], 'upload')} sent again after their answer was lost "
        "(each may have been charged twice)"
    )
    for reason, n in sorted(summary["reasons"].items(), key=lambda kv: -kv[1]):
        click.echo(redact(f"  {n:6d}  {reason}"))
    if failing:
        click.echo(
            f"failed files ({len(failing)}; a run tries one again once it changes, "
            "or after `tagger retry --failed`; a run counts them as known failures, not new trouble):"
        )
        for f in failing[:_LISTED]:
            click.echo(f"  {display(os.path.join(f.dir, f.name))}: {f.reason or 'failed'}")
        if len(failing) > _LISTED:
            click.echo(f"  ... and {len(failing) - _LISTED} more (`tagger status --json` lists every one)")
    if orphans:
        click.echo(
            f"sidecars left behind ({len(orphans)}; tagger wrote them, their photo is gone: moved, renamed or "
            "deleted; `tagger strip --orphans` removes what tagger added):"
        )
        for path in orphans[:_LISTED]:
            click.echo(f"  {display(path)}")
        if len(orphans) > _LISTED:
            click.echo(f"  ... and {len(orphans) - _LISTED} more (`tagger status --json` lists every one)")


#: At most this many paths per list in `tagger status` (--json lists all).
_LISTED = 50


def _orphans(db: Ledger) -> list[bytes]:
    """Sidecars tagger wrote whose photo is gone, that are still on disk."""
    from tagger.ledger.attention import orphaned_sidecars

    return [p for p in orphaned_sidecars(db) if os.path.isfile(p)]


def _shared_url(config: Config) -> str:
    if not config.shared_url:
        raise UsageError("--shared: no shared store configured ([shared] url, TAGGER_SHARED_URL)")
    return config.shared_url


def _shared_status(url: str, as_json: bool) -> None:
    from tagger.shared.view import shared_summary

    summary = shared_summary(url)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    contents = summary["contents"]
    click.echo(
        f"{count(summary['files'], 'file')} on {count(len(summary['machines']), 'machine')}; "
        f"{sum(contents.values())} contents answered ({contents.get('completed', 0)} captioned), "
        f"{summary['in_flight']} claimed and in flight"
    )
    for machine, counts in summary["machines"].items():
        click.echo(f"  {machine}: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


@cli.command()
@config_option
@click.option(
    "--csv", "dest", required=True, type=click.Path(dir_okay=False), help="Where to write (- for standard output)."
)
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file.")
@click.option("--profile", default="default", show_default=True, help=f"{_PROFILES}.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv", show_default=True, help="Output format."
)
@click.option("--include-missing", is_flag=True, help="Also list files no longer on disk.")
@click.option(
    "--shared",
    "shared",
    is_flag=True,
    help="Every machine's captions from the shared store (path, machine, caption, keywords, when).",
)
@click.pass_context
def export(
    ctx: click.Context, dest: str, ledger: str | None, profile: str, fmt: str, include_missing: bool, shared: bool
) -> None:
    """Write the captions the ledger holds as CSV (or JSON lines). Costs nothing (reads the ledger)."""
    from tagger.exports.readout import iter_records
    from tagger.exports.writer import write_export

    config = _config(ctx, {"ledger": ledger})
    refuse_clobber(dest, option="--csv", ledger=config.ledger_path)
    if shared:
        from tagger.shared.view import write_shared_csv

        n = write_shared_csv(_shared_url(config), dest)
        click.echo(f"wrote {n} rows to {'standard output' if dest == '-' else dest}", err=dest == "-")
        return
    with _open_ledger(config) as db:
        records = iter_records(db, include_missing=include_missing, rules=_keyword_rules(config))
        n = write_export(records, dest, profile=profile, fmt=fmt)
    # To standard output ("-"), the rows are the output: the count goes to standard error.
    click.echo(f"wrote {count(n, 'row')} to {'standard output' if dest == '-' else dest}", err=dest == "-")


@cli.command()
@config_option
@click.option("--html", "dest", required=True, type=click.Path(dir_okay=False), help="Where to write the page.")
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file.")
@click.pass_context
def report(ctx: click.Context, dest: str, ledger: str | None) -> None:
    """Write a self-contained HTML contact sheet of images and captions. Costs nothing (reads the ledger)."""
    from tagger.exports.readout import iter_records
    from tagger.sheet.page import write_report

    config = _config(ctx, {"ledger": ledger})
    refuse_clobber(dest, option="--html", ledger=config.ledger_path)
    with _open_ledger(config) as db:
        summary = db.readout.summary()
        n = write_report(
            iter_records(db, rules=_keyword_rules(config)),
            dest,
            summary={
                "counts": {
                    k: summary[k] for k in ("completed", "skipped", "timeout", "not found", "failed", "pending")
                },
                "reasons": summary["reasons"],
                "credits_used": summary["credits_used"],
                "first_run": iso(summary["first_run"]),
                "last_run": iso(summary["last_run"]),
            },
        )
    click.echo(f"wrote {n} images to {dest}")


@cli.command()
@config_option
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file.")
@click.option("--endpoint", help="Endpoint whose jobs to retry (default: the configured one).")
@click.option("--emulator", is_flag=True, help="Retry the in-process emulator's jobs.")
@click.option("--api-key", help="API key, for --timeouts (better: CLOUDSIGHT_API_KEY).")
@click.option("--api-secret", help="API secret, for --timeouts: use OAuth1 instead of the plain key.")
@click.option(
    "--failed",
    is_flag=True,
    help="Files that failed (unreadable, rejected); sent again by the next run, a credit each.",
)
@click.option(
    "--skipped",
    multiple=True,
    help="Skipped images with this reason (repeatable); sent again by the next run, a credit each.",
)
@click.option(
    "--timeouts",
    is_flag=True,
    help="Jobs that timed out or were not found: reposted under the same token (free) while the service knows it, else sent again (a credit).",
)
@click.option(
    "--ambiguous",
    is_flag=True,
    help="Jobs held after a lost answer (resend_ambiguous = false); sent again by the next run, a credit each, and each may be charged twice.",
)
@click.option(
    "--reused",
    is_flag=True,
    help="Files that share a similar photo's caption: the next run sends each on its own, a credit each.",
)
@click.option(
    "--rejected",
    is_flag=True,
    help="Photos a person rejected in review: the next run sends each again, a credit each.",
)
@click.pass_context
def retry(
    ctx: click.Context,
    paths: tuple[str, ...],
    ledger: str | None,
    endpoint: str | None,
    emulator: bool,
    failed: bool,
    skipped: tuple[str, ...],
    timeouts: bool,
    ambiguous: bool,
    reused: bool,
    rejected: bool,
    api_key: str | None,
    api_secret: str | None,
) -> None:
    """Queue selected settled (or held) files (under PATHS, or all) again; the next run over them finishes them.

    --failed, --skipped and --ambiguous: the next run sends each image again,
    a credit each. --timeouts asks the service about each token now (free):
    one it still knows is reposted or polled again under the same token, no
    credit; only one it no longer knows is sent again by the next run, a
    credit each. The output says which.
    """
    from tagger.ledger.keys import normal_endpoint
    from tagger.pipeline.revive import revive_timeouts
    from tagger.pipeline.runner import EMULATOR_ENDPOINT, make_api

    if not (failed or skipped or timeouts or ambiguous or reused or rejected):
        raise UsageError(
            "say what to retry: --failed, --skipped REASON, --timeouts, --ambiguous, --reused or --rejected"
        )
    config = _config(ctx, {"ledger": ledger, "endpoint": endpoint, "api_key": api_key, "api_secret": api_secret})
    endpoint_id = EMULATOR_ENDPOINT if emulator else normal_endpoint(config.endpoint)
    roots = [os.path.abspath(os.fsencode(os.path.expanduser(p))) for p in paths] or None
    # Asking about tokens needs the key; refuse before changing anything. The in-process emulator's
    # tokens died with it: nothing to ask, every one is sent again.
    api = make_api(config) if timeouts and not emulator else None
    revived = None
    elsewhere: dict[str, int] = {}
    unsent = 0
    try:
        with _open_ledger(config) as db:
            db.acquire()
            if failed:
                from tagger.ledger.attention import failed_elsewhere, failed_unsent

                elsewhere = failed_elsewhere(db, endpoint_id, roots)
                unsent = failed_unsent(db, endpoint_id, roots)[1]
            n = (
                db.retry(endpoint_id, failed=failed, skipped=skipped, ambiguous=ambiguous, roots=roots)
                if failed or skipped or ambiguous
                else 0
            )
            if reused:
                n += db.similar.retry_reused(endpoint_id, roots or [])
            if rejected:
                n += db.reviews.retry_rejected(roots)
            if timeouts:
                revived = revive_timeouts(api, db, endpoint_id, roots=roots)
    finally:
        if api is not None:
            api.close()
    if failed or skipped or ambiguous or reused or rejected:
        click.echo(
            f"{count(n, 'job')} queued again; run `tagger run` over them to send them ({_retry_cost(n, unsent, emulator)})"
        )
    for other, failed_there in sorted(elsewhere.items()):
        where = "--emulator" if other == EMULATOR_ENDPOINT else f"--endpoint {other}"
        click.echo(
            f"{count(failed_there, 'failed job')} of another endpoint ({other}) left as they are: "
            f"`tagger retry --failed {where}` queues them again"
        )
    if revived is not None:
        click.echo(
            f"timeouts: {revived.reposted} reposted under their own token (no credit), "
            f"{revived.polling} still known to the service and polled again (no credit), "
            f"{revived.resend} queued to be sent again (the service no longer knows their token: a credit each)"
            + (f", {revived.refused} left as timeout (the service refused to repost them)" if revived.refused else "")
            + (
                f", {revived.unreachable} left as they were (the service could not be reached)"
                if revived.unreachable
                else ""
            )
            + "; run `tagger run` to finish them"
        )


def _sidecar_options(config: Config) -> Any:
    """The sidecar settings of ``config`` (as a run writes them)."""
    from tagger.sidecars.writeback import SidecarOptions

    return SidecarOptions(
        config.sidecars,
        config.sidecar_dir or None,
        config.sidecar_naming,
        config.keyword_parent,
        rules=_keyword_rules(config)(),
        locale=config.locale,
    )


def _roots(paths: tuple[str, ...]) -> list[bytes] | None:
    return [os.path.abspath(os.fsencode(os.path.expanduser(p))) for p in paths] or None


@cli.command()
@config_option
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file.")
@click.option(
    "--export",
    "export_to",
    type=click.Path(dir_okay=False),
    help="Write the photos awaiting review to this CSV (path, caption, keywords, decision) and exit.",
)
@click.option(
    "--import",
    "import_from",
    type=click.Path(dir_okay=False, exists=True),
    help="Record the decisions of this CSV (approve, reject, or empty); every row is checked before any is recorded.",
)
@click.option("--no-browser", is_flag=True, help="Only print the page's address; do not open a browser.")
@click.option("--port", default=0, show_default=True, help="Port of the page (0: a random free port).")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind: loopback unless --bind-anywhere."
)
@click.option(
    "--bind-anywhere",
    is_flag=True,
    help="Allow --host to be an address other than loopback (anyone who can reach it and has the token decides).",
)
@click.pass_context
def review(
    ctx: click.Context,
    paths: tuple[str, ...],
    ledger: str | None,
    export_to: str | None,
    import_from: str | None,
    no_browser: bool,
    port: int,
    host: str,
    bind_anywhere: bool,
) -> None:
    """Decide on held captions (`run --hold`): a local page, or a CSV round trip. Costs nothing (reads the ledger).

    Every decision is recorded at once; `tagger apply` (or the page's Apply
    button) then writes the approved and edited captions into sidecars.
    """
    from tagger.review.spreadsheet import export_sheet, import_sheet

    if export_to and import_from:
        raise UsageError("--export and --import: one at a time")
    config = _config(ctx, {"ledger": ledger})
    roots = _roots(paths)
    if export_to:
        with _open_ledger(config) as db:
            n = export_sheet(db, export_to, roots)
        click.echo(
            f"wrote {count(n, 'photo')} awaiting review to {'standard output' if export_to == '-' else export_to}",
            err=export_to == "-",
        )
        return
    if import_from:
        with _open_ledger(config) as db:
            n = import_sheet(db, import_from, _keyword_rules(config)())
        click.echo(f"recorded {count(n, 'decision')}; `tagger apply` writes the approved and edited captions")
        return
    from tagger.review.server import ReviewServer

    with _open_ledger(config) as db:
        pass  # refuse a missing ledger before binding anything
    server = ReviewServer(
        config.ledger_path,
        _sidecar_options(config),
        roots=roots,
        locale=config.locale,
        host=host,
        port=port,
        bind_anywhere=bind_anywhere,
    )
    click.echo(f"review page: {server.url}")
    click.echo("Ctrl-C stops it; every decision is already recorded.")
    if not no_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@cli.command(name="apply")
@config_option
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file.")
@click.option(
    "--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the caption CSV here (as `run --csv`)."
)
@click.option("--csv-profile", help=f"CSV profile: {_PROFILES}.")
@click.option("--sidecar-dir", type=click.Path(file_okay=False), help="Sidecars are in a mirror of the tree here.")
@click.pass_context
def apply_cmd(
    ctx: click.Context, paths: tuple[str, ...], ledger: str | None, csv_path: str | None, **flags: Any
) -> None:
    """Write the captions a person approved or edited into their sidecars (under PATHS, or all).

    Same merge rules as a run; held and rejected captions are left out.
    Costs nothing (nothing is sent).
    """
    from tagger.review.apply import apply_reviews

    config = _config(ctx, {"ledger": ledger, "csv": csv_path, **flags})
    with _open_ledger(config) as db:
        db.acquire()
        result = apply_reviews(db, _sidecar_options(config), _roots(paths))
        rows = _csv_exporter(config)(db) if config.csv else None
    click.echo(
        f"applied {count(result.decided, 'decided caption')}: sidecars written {result.written}"
        + (f", {result.failed} could not be written (see `tagger status`)" if result.failed else "")
        + (f"; CSV rows {rows}" if rows is not None else "")
    )
    if result.failed:
        ctx.exit(1)


@cli.group()
def vocabulary() -> None:
    """Your keyword vocabulary ([keywords] vocabulary) against the captions. Costs nothing (reads the ledger)."""


@vocabulary.command()
@config_option
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: word -> photos.")
@click.pass_context
def unmapped(ctx: click.Context, ledger: str | None, as_json: bool) -> None:
    """List the caption words your vocabulary lacks, with how many photos had each, most frequent first.

    Costs nothing (reads the ledger).
    """
    config = _config(ctx, {"ledger": ledger})
    with _open_ledger(config) as db:
        counts = db.writes.unmapped_counts()
    if as_json:
        click.echo(json.dumps(dict(counts), ensure_ascii=False))
        return
    for word, n in counts:
        click.echo(f"{n:6d}  {word}")


@cli.command()
@config_option
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--dry-run", is_flag=True, help="List what would be deleted or updated; change nothing.")
@click.option(
    "--orphans",
    is_flag=True,
    help="Strip the sidecars tagger wrote for photos now gone (moved, renamed, deleted): under PATHS, or all.",
)
@click.option("--ledger", type=click.Path(dir_okay=False), help="Ledger file (with --orphans).")
@click.pass_context
def strip(ctx: click.Context, paths: tuple[str, ...], dry_run: bool, orphans: bool, ledger: str | None) -> None:
    """Remove from sidecars exactly what tagger added, nothing else. Costs nothing (local files only).

    PATHS are folders, sidecars, or photos (a photo's own sidecars). A
    sidecar tagger created and nothing else uses is deleted.
    """
    from tagger.display import display
    from tagger.sidecars.stripping import preview_strip, sidecars_for
    from tagger.sidecars.write import SidecarError, strip_sidecar

    if not paths and not orphans:
        raise UsageError("say what to strip: one or more folders, sidecars or photos, or --orphans")
    if orphans:
        config = _config(ctx, {"ledger": ledger})
        roots = [os.path.abspath(os.fsencode(os.path.expanduser(p))) for p in paths] or None
        with _open_ledger(config) as db:
            targets = [os.fsdecode(p) for p in _orphans(db) if roots is None or _under(p, roots)]
    else:
        targets = list(sidecars_for(paths))
    counts: dict[str, int] = {}
    errors = 0
    for sidecar in targets:
        try:
            outcome = preview_strip(sidecar) if dry_run else strip_sidecar(sidecar)
        except SidecarError as exc:
            click.echo(f"tagger: {exc}", err=True)
            errors += 1
            continue
        counts[outcome] = counts.get(outcome, 0) + 1
        if dry_run and outcome in ("deleted", "updated"):
            click.echo(f"would be {outcome}: {display(sidecar)}")
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no sidecars found"
    click.echo(f"dry run, nothing changed: {summary}" if dry_run else summary)
    if errors:
        _exit(1)


def _under(path: bytes, roots: list[bytes]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one."""
    return any(path == root or path.startswith(root.rstrip(b"/") + b"/") for root in roots)


@cli.command()
@config_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, a key per app.")
@click.option(
    "--sidecar-dir",
    type=click.Path(file_okay=False),
    help="Sidecars are in a mirror of the tree here (as `run --sidecar-dir`).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    help="With a sidecar folder: the folder `tagger run` was given (default: the ledger's record).",
)
@click.option(
    "--ledger", type=click.Path(dir_okay=False), help="Ledger file that knows which run root each photo is under."
)
@click.pass_context
def show(
    ctx: click.Context,
    paths: tuple[str, ...],
    as_json: bool,
    sidecar_dir: str | None,
    root: str | None,
    ledger: str | None,
) -> None:
    """Print what darktable, digiKam, Lightroom, Immich and PhotoPrism show for each photo and its sidecar.

    Costs nothing (local files only).
    """
    from tagger.sidecars.readers import mirror_folder_of, sidecars_of
    from tagger.sidecars.readers import show as shown_by

    config = _config(ctx, {"sidecar_dir": sidecar_dir, "ledger": ledger})
    mirror = config.sidecar_dir or None
    # The ledger knows the run root a mirrored sidecar's place starts from; opened only when that is needed.
    use_ledger = mirror is not None and root is None and os.path.exists(config.ledger_path)
    errors = 0
    with _ledger(config) if use_ledger else contextlib.nullcontext() as db:
        for path, walked_from in _photos_under(paths):
            try:
                folder = (
                    mirror_folder_of(path, mirror, root=root, ledger=db, walked_from=walked_from) if mirror else None
                )
            except UsageError as exc:
                click.echo(f"tagger: {exc}", err=True)
                errors += 1
                continue
            apps = shown_by(path, folder=folder)
            if as_json:
                shown = {"path": display(path), **{app: s.as_json() for app, s in apps.items()}}
                click.echo(json.dumps(shown, ensure_ascii=False))
                continue
            click.echo(display(path))
            found = [display(p) for p in sidecars_of(path, folder=folder) if p and os.path.isfile(p)]
            click.echo(f"  {'sidecar:':18} {', '.join(found) or 'none'}")
            for app, s in apps.items():
                mark = f" [{'yours' if s.description_by == 'user' else s.description_by}]" if s.description_by else ""
                keywords = ", ".join(k + (" [tagger]" if k in s.tagger_keywords else "") for k in s.keywords)
                click.echo(f"  {app:18} description: {s.description or '-'}{mark}")
                click.echo(f"  {'':18} keywords: {keywords or '-'}")
    if errors:
        sys.exit(1)


def _photos_under(paths: tuple[str, ...]):
    """Each photo of ``paths`` with the folder it was walked from (None for a photo named itself)."""
    from tagger.prepare.formats import is_image_name

    for path in paths:
        if not os.path.isdir(path):
            yield path, None
            continue
        for folder, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            yield from ((os.path.join(folder, name), path) for name in sorted(files) if is_image_name(name))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8765, show_default=True, help="Port (0: any free port).")
@click.option("--latency", default="0.2-0.5", show_default=True, help="Seconds per job, A-B (6-12 is realistic).")
@click.option("--key", default="emulator-key", show_default=True, help="API key the emulator accepts.")
@click.option("--secret", default="emulator-secret", show_default=True, help="OAuth1 secret the emulator accepts.")
@click.option("--ttl", default=60.0, show_default=True, help="Default job TTL in seconds.")
@click.option("--credits", default=100_000, show_default=True, help="Starting credit balance.")
@click.option("--seed", type=int, help="Random seed (latencies, faults).")
@click.option("--error-rate", default=0.0, help="Fraction of requests answered 5xx.")
@click.option("--rate-limit-rate", default=0.0, help="Fraction of requests answered 429.")
@click.option("--retry-after", default=1.0, help="Retry-After seconds on a 429.")
@click.option("--drop-rate", default=0.0, help="Fraction of connections dropped without an answer.")
@click.option("--slow-rate", default=0.0, help="Fraction of answers delayed.")
@click.option("--slow-seconds", default=2.0, help="Delay of a slow answer.")
@click.option("--unsure-rate", default=0.0, help="Fraction of jobs skipped as unsure.")
@click.option("--timeout-rate", default=0.0, help="Fraction of jobs that time out.")
@click.option(
    "--outage-seconds", default=0.0, help="Answer every request with --outage-status for this long after start."
)
@click.option("--outage-requests", default=0, help="Answer the first N requests with --outage-status.")
@click.option("--outage-status", default=503, show_default=True, help="HTTP status of an outage (5xx).")
@click.option(
    "--outage-retry-after", type=float, help="Retry-After seconds sent with an outage's answers (default: none)."
)
@click.option("--lost-answers", default=0, help="Accept (and charge) the first N submissions, then lose their answer.")
@click.option(
    "--lost-answer-rate", default=0.0, help="Fraction of accepted (and charged) submissions whose answer is lost."
)
@click.option(
    "--lost-answer-kind",
    default="cycle",
    show_default=True,
    type=click.Choice(["timeout", "reset", "500", "502", "504", "cycle"]),
    help="How the answer is lost: held past the client's timeout, a TCP reset, a 5xx; cycle: each in turn.",
)
@click.option(
    "--lost-answer-seconds", default=75.0, show_default=True, help="How long a 'timeout' holds the answer back."
)
@click.option("--stuck-rate", default=0.0, help="Fraction of jobs that answer 'not completed' for ever.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False),
    help="File keeping jobs and balance between starts (default: emulator.sqlite in tagger's data folder).",
)
@click.option("--forgetful", is_flag=True, help="Keep nothing between starts (no state file).")
def emulator(
    host: str,
    port: int,
    latency: str,
    key: str,
    secret: str,
    ttl: float,
    credits: int,
    seed: int | None,
    error_rate: float,
    rate_limit_rate: float,
    retry_after: float,
    drop_rate: float,
    slow_rate: float,
    slow_seconds: float,
    unsure_rate: float,
    timeout_rate: float,
    outage_seconds: float,
    outage_requests: int,
    outage_status: int,
    outage_retry_after: float | None,
    lost_answers: int,
    lost_answer_rate: float,
    lost_answer_kind: str,
    lost_answer_seconds: float,
    stuck_rate: float,
    state: str | None,
    forgetful: bool,
) -> None:
    """Serve a CloudSight-compatible emulator (honest: it recognises nothing). Costs nothing (offline)."""
    from tagger.emulator import Faults, parse_latency, serve

    try:
        span = parse_latency(latency)
    except ValueError as exc:
        raise UsageError(f"--latency: {exc}") from None
    try:
        faults = Faults(
            server_error_rate=error_rate,
            rate_limit_rate=rate_limit_rate,
            retry_after=retry_after,
            drop_rate=drop_rate,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            unsure_rate=unsure_rate,
            timeout_rate=timeout_rate,
            outage_seconds=outage_seconds,
            outage_requests=outage_requests,
            outage_status=outage_status,
            outage_retry_after=outage_retry_after,
            lost_answers=lost_answers,
            lost_answer_rate=lost_answer_rate,
            lost_answer_kind=lost_answer_kind,
            lost_answer_seconds=lost_answer_seconds,
            stuck_rate=stuck_rate,
        )
    except ValueError as exc:
        raise UsageError(f"emulator faults: {exc}") from None
    from tagger.config import default_ledger_path
    from tagger.emulator import StateFileBusy

    if forgetful and state:
        raise UsageError("--state and --forgetful: choose one")
    if not forgetful:
        state = (
            os.path.expanduser(state)
            if state
            else os.path.join(os.path.dirname(default_ledger_path()), "emulator.sqlite")
        )
    try:
        serve(
            host,
            port,
            key=key,
            secret=secret,
            latency=span,
            ttl=ttl,
            faults=faults,
            credits=credits,
            seed=seed,
            state=None if forgetful else state,
        )
    except StateFileBusy as exc:
        raise UsageError(f"{exc}; stop it first, or give another --state") from None


def _debug(debug: bool) -> None:
    """With --debug, the traceback of the exception being handled, redacted like every message."""
    if debug:
        click.echo(redact(traceback.format_exc()), err=True, nl=False)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; the one place errors become a sentence and an exit status."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = cli.main(args=argv, prog_name="tagger", standalone_mode=False)
    except click.exceptions.Exit as exc:
        _exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        _exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("tagger: interrupted; run the same command again to resume", err=True)
        _exit(EXIT_STOPPED)
    except KeyboardInterrupt:
        click.echo("tagger: interrupted; run the same command again to resume", err=True)
        _exit(EXIT_STOPPED)
    except TaggerError as exc:
        _debug(debug)
        click.echo(redact(f"tagger: {exc}"), err=True)
        _exit(exc.exit_code)
    except APIError as exc:
        _debug(debug)
        click.echo(redact(f"tagger: {exc.description}"), err=True)
        _exit(EXIT_STOPPED)
    except OSError as exc:
        _debug(debug)
        click.echo(redact(f"tagger: {exc}"), err=True)
        _exit(EXIT_USAGE)
    except Exception as exc:  # a bug: still a sentence, and the ledger lets a re-run resume
        _debug(debug)
        click.echo(
            redact(f"tagger: internal error ({type(exc).__name__}: {exc}); run again with --debug and report it"),
            err=True,
        )
        _exit(EXIT_STOPPED)
    _exit(code if isinstance(code, int) else EXIT_OK)


def _exit(code: int) -> NoReturn:
    """Exit with ``code``; a process a signal stopped skips Python's finalization (see ``exit_after_signal``)."""
    from tagger.stopping import exit_after_signal, signalled

    if signalled():  # another signal while the interpreter exits must not end it by the signal (130)
        exit_after_signal(code)
    sys.exit(code)
