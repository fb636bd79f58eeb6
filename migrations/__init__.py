"""Ledger schema versions, applied in order by ``sqlite_utils.Migrations``.

Each ``mNNN_*.py`` module holds one schema change as ``apply(db)``. Never
edit a migration that has shipped: add the next one. The installed wheel
carries this folder as ``tagger.ledger.migrations``.
"""

from __future__ import annotations

import importlib

from sqlite_utils import Migrations

__all__ = ["MIGRATIONS", "NAMES"]

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
)

MIGRATIONS = Migrations("tagger")
for _name in NAMES:
    _module = importlib.import_module(f"{__name__}.{_name}")
    # A module with TRANSACTIONAL = False runs its own transaction (a table rebuild needs foreign keys off).
    MIGRATIONS(name=_name, transactional=getattr(_module, "TRANSACTIONAL", True))(_module.apply)
