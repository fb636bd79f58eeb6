"""Ledger schema versions, applied in order by ``sqlite_utils.Migrations``.

Each ``mNNN_*.py`` module holds one schema change as ``apply(db)``. Never
edit a migration that has shipped: add the next one. The installed wheel
carries this folder as ``tagger.ledger.migrations``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Migrations

__all__ = ["MIGRATIONS", "NAMES", "MIGRATIONS_TABLE"]

#: Where sqlite-utils records the migrations applied (``Migrations.migrations_table``; a test keeps them equal).
#: The ledger reads it directly, so opening an up-to-date ledger imports neither sqlite-utils nor the migrations.
MIGRATIONS_TABLE = "_sqlite_migrations"

#: Every migration, oldest first. Appending here is how the schema evolves.
NAMES: tuple[str, ...] = (
    "m001_initial",
    "m002_remote_urls",
    "m003_run_balance",
    "m004_jobs_endpoint_state",
    "m005_unwritten_index",
    "m006_job_latency",
    "m007_hash_scheme",
    "m008_job_locale_endpoint",
    "m010_possible_duplicates",
    "m012_job_keywords",
    "m013_fingerprints",
    "m014_noop_indexes",
    "m018_reviews",
    "m019_shared_published",
)


def _build() -> Migrations:
    from sqlite_utils import Migrations

    migrations = Migrations("tagger")
    for name in NAMES:
        module = importlib.import_module(f"{__name__}.{name}")
        # A module with TRANSACTIONAL = False runs its own transaction (a table rebuild needs foreign keys off).
        migrations(name=name, transactional=getattr(module, "TRANSACTIONAL", True))(module.apply)
    return migrations


def __getattr__(name: str) -> Any:
    """``MIGRATIONS`` (every migration, registered with sqlite-utils), built on first use."""
    if name == "MIGRATIONS":
        globals()["MIGRATIONS"] = built = _build()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
