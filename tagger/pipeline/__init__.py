"""One run: scan the folders, plan against the ledger, dispatch submissions and polls, write back.

Owns: ``scan`` (walking folders), ``plan`` (what each file needs),
``intake`` (new files streamed from the walk, claimed by content),
``dispatch`` (keeping jobs in flight), ``schedule`` (when to poll each token),
``latency`` (the service's latency model), ``similar`` (a copy of a photo
shares its caption), ``sharing`` (claims and answers through the shared store), ``urls`` (remote images),
``threads`` (the daemon thread pool a stopping run can leave behind),
``revive`` (``tagger retry --timeouts``), ``progress``, ``context`` (what a run and a dry run both
open: the ledger, the client, the shared store, the options), ``dryrun`` (``dry_run()``: what a run
would send and spend, sending nothing; ``dryread``, its bounded reads) and ``runner`` (``run()``, the
library's entry point).

May import: the standard library, tqdm, pathspec (exclude patterns), and every other part of tagger
except ``tagger.cli``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tagger.pipeline.dryrun import DryRunResult, dry_run
    from tagger.pipeline.runner import EMULATOR_ENDPOINT, RunResult, make_api, run

__all__ = ["run", "RunResult", "dry_run", "DryRunResult", "make_api", "EMULATOR_ENDPOINT"]

_WHERE = {"dry_run": "dryrun", "DryRunResult": "dryrun"}


def __getattr__(name: str) -> Any:
    """``run``, ``dry_run`` and the rest, imported on first use: importing one module of the pipeline (a run
    imports ``runner``) does not import the others (a dry run's hashers, a nightly no-op's dispatcher)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_WHERE.get(name, 'runner')}"), name)
    globals()[name] = value
    return value
