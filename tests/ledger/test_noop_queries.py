"""The ledger questions every no-op run asks, answered from small indexes (m014): same answers as a full read."""

from __future__ import annotations

from tagger.ledger.store import Ledger, under_roots


def _rows(ledger: Ledger, dirs: list[bytes]) -> None:
    ledger.files.upsert(
        [
            (d, b"f%d.jpg" % i, b"/r", 1, 1, "%064x" % (hash(d) % 10**9 + i), "active", None)
            for d in dirs
            for i in range(3)
        ]
    )


def test_known_dirs_are_the_folders_under_a_root_and_no_sibling(tmp_path):
    dirs = [
        b"/r/tree",
        b"/r/tree/a",
        b"/r/tree/a/b",
        b"/r/tree/z",
        b"/r/tree-2",
        b"/r/tree-2/a",
        b"/r/tree0",
        b"/r/tre",
        b"/r",
    ]
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        _rows(ledger, dirs)
        for root in (b"/r/tree", b"/r/tree/", b"/r", b"/", b"/r/tree/a/b", b"/r/nothing", b"/r/tree/a/b/c"):
            where, params = under_roots([root])
            full = [r[0] for r in ledger.query(f"SELECT DISTINCT dir FROM files WHERE {where} ORDER BY dir", params)]
            assert ledger.files.known_dirs(root) == full, root
        assert ledger.files.known_dirs(b"/r/tree") == [b"/r/tree", b"/r/tree/a", b"/r/tree/a/b", b"/r/tree/z"]


def test_stale_keywords_are_found_whatever_the_rules_they_were_derived_under(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        _rows(ledger, [b"/r/a"])
        ledger.files.link_folder("e", b"/r/a", [h for (h,) in ledger.query("SELECT content_hash FROM files")])
        assert not ledger.writes.has_stale_keywords("m")  # nothing completed
        with ledger.transaction() as c:
            c.execute("UPDATE jobs SET state = 'completed', caption = 'a cat'")
        assert ledger.writes.has_stale_keywords("m")  # never derived
        for stored, stale in (("m", False), ("a", True), ("z", True)):
            with ledger.transaction() as c:
                c.execute("UPDATE jobs SET keyword_rules = ?", (stored,))
            assert ledger.writes.has_stale_keywords("m") is stale
            assert bool(ledger.writes.stale_keywords("m")) is stale
        with ledger.transaction() as c:
            c.execute("UPDATE jobs SET keyword_rules = 'a' WHERE id = (SELECT min(id) FROM jobs)")
        assert ledger.writes.has_stale_keywords("m")


def test_the_summary_counts_files_needing_attention_from_the_partial_index(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        _rows(ledger, [b"/r/a", b"/r/b", b"/s/c"])
        ledger.files.link_folder(
            "e", b"/r/a", [h for (h,) in ledger.query("SELECT content_hash FROM files WHERE dir = ?", (b"/r/a",))]
        )
        with ledger.transaction() as c:
            c.execute("UPDATE jobs SET state = 'completed', status = 'completed', caption = 'x'")
            c.execute("UPDATE files SET written_job = job_id WHERE job_id IS NOT NULL")
            c.execute(
                "UPDATE files SET state = 'missing' WHERE dir = CAST('/r/b' AS BLOB) AND name = CAST('f0.jpg' AS BLOB)"
            )
            c.execute(
                "UPDATE files SET state = 'failed', reason = 'cannot read' WHERE dir = CAST('/r/b' AS BLOB) AND name = CAST('f1.jpg' AS BLOB)"
            )
            c.execute("UPDATE jobs SET possible_duplicates = 2 WHERE id = (SELECT min(id) FROM jobs)")
        counts = ledger.readout.summary([b"/r"], remote=False)
        assert (counts["total"], counts["completed"], counts["missing"], counts["failed"], counts["pending"]) == (
            5,
            3,
            1,
            1,
            1,
        )
        assert counts["reasons"] == {"failed: cannot read": 1}
        assert counts["possible_duplicates"] == 2
        everything = ledger.readout.summary(remote=False)
        assert (everything["total"], everything["pending"]) == (8, 4)


def test_the_ledger_reads_the_table_sqlite_utils_records_migrations_in(tmp_path):
    from sqlite_utils import Migrations

    from tagger.ledger.migrations import MIGRATIONS, MIGRATIONS_TABLE, NAMES

    assert Migrations.migrations_table == MIGRATIONS_TABLE
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        assert ledger._applied() == set(NAMES) == {m.name for m in MIGRATIONS.applied(ledger.db)}


def test_opening_an_up_to_date_ledger_imports_no_sqlite_utils(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "l.sqlite"
    Ledger(str(path)).close()
    code = (
        "import sys; from tagger.ledger.store import Ledger; Ledger(sys.argv[1]).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sqlite_utils', 'numpy', 'simplemma')))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
