"""The shared store: several machines, one bill, through PostgreSQL (opt-in, ``[shared] url``).

Owns: ``base`` (the ``SharedStore`` interface, ``NoShared`` when no URL is
configured, the answers and claims it passes, ``redact``), ``open``
(``open_store``: connecting, the faults of the start), ``store`` (the
PostgreSQL store: claims as leases, tokens, answers, fingerprints, files),
``migrations`` (the shared schema and its version check) and ``view``
(``tagger status --shared``, ``tagger export --shared``). psycopg is imported
only when a URL is configured.

May import: the standard library, psycopg, ``tagger.errors``, ``tagger.redact``, ``tagger.atomic``,
``tagger.prepare`` (its fingerprints), ``tagger.exports`` (a cell's formula guard).
"""

from tagger.shared.base import NoShared, SharedError, SharedStore, StoreDown, redact
from tagger.shared.open import open_store

__all__ = ["SharedStore", "NoShared", "SharedError", "StoreDown", "open_store", "redact"]
