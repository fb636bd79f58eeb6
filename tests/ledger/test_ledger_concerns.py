"""The ledger's concerns are objects it holds, each given only the ``LedgerCore``; their results are named rows."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import tagger.ledger
from tagger.ledger import Ledger
from tagger.ledger.core import LedgerCore

LEDGER = Path(tagger.ledger.__file__).parent
CONCERNS = {
    "files": "files.py",
    "planning": "planning.py",
    "similar": "similarity.py",
    "writes": "writes.py",
    "reviews": "review.py",
    "readout": "readout.py",
}
#: What the concerns may ask of the core: the Protocol's members, nothing else.
CORE = {n for n in dir(LedgerCore) if not n.startswith("_")}


def _public(cls: type) -> set[str]:
    return {n for n, v in inspect.getmembers(cls) if not n.startswith("_") and callable(v)}


def test_ledger_forwards_nothing_to_its_concerns(tmp_path: Path) -> None:
    with Ledger(str(tmp_path / "l.db")) as ledger:
        own = _public(Ledger)
        for attr in CONCERNS:
            concern = getattr(ledger, attr)
            shared = own & _public(type(concern))
            assert not shared, f"Ledger still has {attr}'s {sorted(shared)}"
        assert len(own) < 40, sorted(own)  # the job life cycle and the plumbing only (105 with the mixins)


@pytest.mark.parametrize("module", sorted(set(CONCERNS.values())))
def test_concerns_reach_the_database_only_through_the_core(module: str) -> None:
    tree = ast.parse((LEDGER / module).read_text())
    used = set()
    for node in ast.walk(tree):
        # self._core.<name>
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "_core"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
        ):
            used.add(node.attr)
        # no concern holds a connection or a lock of its own
        assert not (isinstance(node, ast.Attribute) and node.attr in ("conn", "_lock", "_clock", "_scoped")), (
            f"{module}:{node.lineno} reaches {getattr(node, 'attr', '')}"
        )
    assert used, module
    assert used <= CORE, f"{module} uses {sorted(used - CORE)}, not in LedgerCore"


def test_a_cache_transaction_restores_full_sync(tmp_path: Path) -> None:
    """``transaction(durable=False)`` (folder marks) leaves the connection at synchronous=FULL, on error too."""
    with Ledger(str(tmp_path / "l.db")) as ledger:
        full = ledger.query("PRAGMA synchronous")[0][0]
        assert full == 2
        with ledger.transaction(durable=False) as c:
            assert c.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL inside
            c.execute("INSERT INTO runs (started_at, endpoint, pid, submitted) VALUES (1, 'e', 1, 0)")
        assert ledger.query("PRAGMA synchronous")[0][0] == full
        with pytest.raises(RuntimeError), ledger.transaction(durable=False) as c:
            c.execute("INSERT INTO runs (started_at, endpoint, pid, submitted) VALUES (2, 'e', 1, 0)")
            raise RuntimeError("boom")
        assert ledger.query("PRAGMA synchronous")[0][0] == full
        assert [r[0] for r in ledger.query("SELECT started_at FROM runs")] == [1]  # the failed one rolled back


def test_results_are_named_rows(tmp_path: Path) -> None:
    """What used to be bare tuples reads by name and still unpacks."""
    with Ledger(str(tmp_path / "l.db")) as ledger:
        claim = ledger.files.claim("ep", b"/p", b"a.jpg", b"/p", 10, 20, "h1")
        assert (claim.file_id, claim.job_id, claim.created) == (1, 1, True)
        again = ledger.files.claim("ep", b"/p", b"b.jpg", b"/p", 11, 21, "h1")
        file_id, job_id, created = again
        assert (file_id, job_id, created) == (2, 1, False)  # the same content: the same job, no credit
        known = ledger.files.in_folder(b"/p")
        assert known[b"b.jpg"].size == 11 and known[b"b.jpg"].content_hash == "h1" and known[b"b.jpg"].state == "active"
        stamp = ledger.planning.folder_stamp()
        assert stamp.changes == stamp[1] > 0
        statuses = ledger.readout.summary()
        assert (statuses["total"], statuses["pending"]) == (2, 2)
        assert ledger.similar.fingerprint_of("h1") is None
        ledger.similar.save_fingerprint("h1", 7, 0, 1.5, b"print")
        assert ledger.similar.fingerprint_of("h1") == (1.5, b"print")
        assert ledger.similar.fingerprint_of("h1").aspect == 1.5  # type: ignore[union-attr]
        waiters = ledger.similar.settle_waiters(job_id)
        assert waiters.shared == [] and waiters.requeued == []
