"""What the ledger's concerns are given by the ``Ledger``: its connection's reads, its write transactions, its clock.

Each concern (``files``, ``planning``, ``similarity``, ``writes``, ``review``, ``readout``) is a small
class built with a ``LedgerCore``; it reaches the database only through it, never through another
concern's or the ``Ledger``'s private state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

__all__ = ["LedgerCore"]


class LedgerCore(Protocol):
    """The part of a ``Ledger`` its concerns use: one connection, serialised across threads."""

    @property
    def path(self) -> str:
        """The resolved ledger file (``:memory:`` for a ledger in memory)."""
        ...

    @property
    def locale(self) -> str:
        """The locale whose jobs this ledger object plans, sends and links (part of every job's key)."""
        ...

    @property
    def scoped(self) -> bool:
        """Whether this run sends only the queued jobs ``Ledger.set_scope`` chose (``temp.run_scope``)."""
        ...

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        ...

    def transaction(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction; ``durable=False`` commits without waiting for the disk (a cache's writes)."""
        ...

    def write_stamp(self) -> tuple[int, int]:
        """Where the ledger's writes stand (any connection's commits, this one's changes)."""
        ...

    def now(self) -> float:
        """The ledger's clock (wall time in seconds)."""
        ...
