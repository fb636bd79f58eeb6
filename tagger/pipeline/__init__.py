"""One run: scan the folders, plan against the ledger, dispatch submissions and polls, write back.

Owns: ``scan`` (walking folders), ``plan`` (what each file needs),
``intake`` (new files streamed from the walk, claimed by content),
``dispatch`` (keeping jobs in flight), ``schedule`` (when to poll each token),
``latency`` (the service's latency model), ``similar`` (a copy of a photo
shares its caption), ``sharing`` (claims and answers through the shared store), ``urls`` (remote images),
``threads`` (the daemon thread pool a stopping run can leave behind),
``revive`` (``tagger retry --timeouts``), ``progress`` and ``runner``
(``run()``, the library's entry point).

May import: the standard library, tqdm, pathspec (exclude patterns), and every other part of tagger
except ``tagger.cli``.
"""

from tagger.pipeline.runner import EMULATOR_ENDPOINT, RunResult, make_api, run

__all__ = ["run", "RunResult", "make_api", "EMULATOR_ENDPOINT"]
