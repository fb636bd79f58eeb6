"""What a run and a dry run both open: the rules, the ledger, the client, the shared store and the options.

``opened()`` checks the arguments, reads the keyword rules, opens the ledger
(a dry run without one counts in memory), the client and the shared store,
and builds the sidecar and prepare options; ``runner.run()`` and
``dryrun.dry_run()`` then do their own work with it.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from tagger.client.lazy import LazyAPI
from tagger.config import Config, check_secret
from tagger.errors import UsageError
from tagger.keywords.derive import KeywordRules
from tagger.keywords.stored import keyword_rules
from tagger.ledger.attention import Failing, failing_files
from tagger.ledger.keys import normal_endpoint
from tagger.ledger.planning import HASH_SCHEME
from tagger.ledger.store import Ledger
from tagger.pipeline.excludes import Excludes
from tagger.pipeline.progress import Progress
from tagger.pipeline.urls import url_key
from tagger.prepare.options import PrepareOptions
from tagger.redact import remember
from tagger.shared import SharedStore, open_store
from tagger.sidecars.writeback import SidecarOptions

if TYPE_CHECKING:
    from tagger.client import cloudsight as cs

__all__ = ["EMULATOR_ENDPOINT", "RunContext", "WalkStopped", "make_api", "opened"]

#: How the ledger names the in-process emulator, whatever port it got.
EMULATOR_ENDPOINT = "emulator"


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


class WalkStopped(Exception):
    """The stop event was set while the folders were being planned."""


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


def _check_paths(paths: Sequence[str]) -> None:
    """Refuse a path that does not exist or is neither a photo nor a folder."""
    for p in paths:
        if not os.path.exists(p):
            raise UsageError(f"{p} does not exist")
        if not (os.path.isdir(p) or os.path.isfile(p)):
            # A named pipe would hang a read (or be walked as nothing, exit 0): refused, with what it is.
            raise UsageError(f"{p} is {_kind(os.stat(p).st_mode)}, not a photo or a folder; give photos or folders")


@dataclass
class RunContext:
    """What both runs work with, opened by ``opened()``."""

    config: Config
    rules: KeywordRules
    progress: Progress
    broots: list[bytes]  # the PATHs, absolute, as bytes
    excludes: Excludes
    ledger: Ledger
    api: cs.API
    endpoint: str  # how the ledger names the service, in its normal form
    store: SharedStore
    failing_before: dict[int, Failing]  # the files that had failed when the run began
    sidecars: SidecarOptions
    url_keys: list[str]
    prep_options: PrepareOptions
    processes: int  # worker processes that read and prepare files (0: threads)
    stop: threading.Event | None
    #: The run ended while the walk went on: it stops at the next folder.
    cancelled: threading.Event = field(default_factory=threading.Event)

    def scanned(self, n: int) -> None:
        """The walk's progress callback: counts ``n`` scanned files, stops the walk between two folders."""
        self.progress("scanned", n)
        if (self.stop is not None and self.stop.is_set()) or self.cancelled.is_set():
            raise WalkStopped  # between two folders: each folder's changes are already committed


@contextmanager
def opened(
    config: Config,
    paths: Sequence[str],
    *,
    dry: bool,
    api: cs.API | None,
    endpoint_id: str | None,
    progress: Progress | None,
    urls: Sequence[str],
    stop: threading.Event | None,
) -> Iterator[RunContext]:
    """Check the arguments, open the ledger (locked, unless ``dry``), the client and the shared store; close them after."""
    _check_paths(paths)
    # Read the vocabulary first: a broken one stops the run before anything is sent.
    rules = keyword_rules(config.vocabulary, config.unmapped, config.locale, config.keyword_parent)
    progress = progress or Progress(enabled=False)
    broots = [os.path.abspath(os.fsencode(p)) for p in paths]
    # What no one wants captioned (NAS thumbnails, trash), the user's patterns, tagger's own sidecar folder.
    excludes = Excludes(config.exclude, own_folders=(config.sidecar_dir,) if config.sidecar_dir else ())
    with ExitStack() as stack:
        ledger = stack.enter_context(
            Ledger(
                config.ledger_path if not dry or os.path.exists(config.ledger_path) else ":memory:",
                locale=config.locale,
            )
        )
        if not dry:
            ledger.acquire()
        api = api or stack.enter_context(make_api(config, lazy=True))
        endpoint = normal_endpoint(endpoint_id or api.base_url)
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
        yield RunContext(
            config=config,
            rules=rules,
            progress=progress,
            broots=broots,
            excludes=excludes,
            ledger=ledger,
            api=api,
            endpoint=endpoint,
            store=store,
            failing_before=failing_files(ledger, broots),
            sidecars=SidecarOptions(
                config.sidecars,
                config.sidecar_dir or None,
                config.sidecar_naming,
                config.keyword_parent,
                rules=rules,
                locale=config.locale,
                hold=config.hold,
                # Two roots in one mirror would map A/IMG_0001.JPG and B/IMG_0001.JPG onto one sidecar.
                per_root=len(broots) > 1,
            ),
            url_keys=[url_key(u) for u in urls],
            prep_options=PrepareOptions(
                max_edge=config.max_edge,
                quality=config.quality,
                max_pixels=config.max_pixels,
                send_location=config.send_location,
                time_limit=config.prepare_time_limit,
                read_metadata=config.sidecars,
            ),
            processes=config.workers if config.prepare_in_processes else 0,
            stop=stop,
        )
