"""The ledger: schema migrations, the run lock, crash sweep, state changes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlite_utils

from tagger.errors import LedgerError, LedgerLocked
from tagger.ledger.migrations import MIGRATIONS, NAMES
from tagger.ledger.store import JobState, Ledger


def test_new_ledger_has_every_migration_and_wal(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        applied = [m.name for m in MIGRATIONS.applied(ledger.db)]
        assert applied == list(NAMES)
        assert ledger.query("PRAGMA journal_mode")[0][0] == "wal"
        assert {"files", "jobs", "runs"} <= set(ledger.db.table_names())


def test_ledger_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "l.sqlite"
    Ledger(str(path)).close()
    db = sqlite_utils.Database(path)
    db["_sqlite_migrations"].insert({"migration_set": "tagger", "name": "m999_from_the_future", "applied_at": "2030"})
    db.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="newer tagger"):
        Ledger(str(path))
    assert path.read_bytes() == before


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "l.sqlite"
    path.write_text("hello, not sqlite" * 100)
    with pytest.raises(LedgerError, match="not a usable tagger ledger"):
        Ledger(str(path))


def test_second_holder_is_told_the_pid(tmp_path):
    path = str(tmp_path / "l.sqlite")
    first = Ledger(path)
    first.acquire()
    second = Ledger(path)
    with pytest.raises(LedgerLocked) as err:
        second.acquire()
    assert str(os.getpid()) in str(err.value)
    assert err.value.exit_code == 3
    first.close()
    second.acquire()  # released on close
    second.close()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    path = str(tmp_path / "l.sqlite")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-P",
            "-c",
            textwrap.dedent(f"""
            import sys, time
            from tagger.ledger.store import Ledger
            l = Ledger({path!r}); l.acquire(); print("held", flush=True); time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LedgerLocked, match=str(holder.pid)):
        Ledger(path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with Ledger(path) as ledger:
        ledger.acquire()
        assert open(path + ".lock").read() == str(os.getpid())


def _one_job(ledger: Ledger, tmp_path) -> int:
    ledger.files.upsert([(os.fsencode(tmp_path), b"a.jpg", os.fsencode(tmp_path), 10, 1, "h1", "active", None)])
    assert ledger.files.link_folder("http://x/v1", os.fsencode(tmp_path), ["h1"]) == 1
    return ledger.jobs_in_state("http://x/v1", JobState.QUEUED)[0].id


def test_sweep_requeues_only_jobs_without_a_token(tmp_path):
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        job = _one_job(ledger, tmp_path)
        ledger.begin_submit(job)
        assert ledger.query("SELECT state FROM jobs")[0][0] == "submitting"
        assert ledger.sweep() == 1
        assert ledger.query("SELECT state, last_error FROM jobs")[0] == ("queued", "interrupted while submitting")
        ledger.begin_submit(job)
        ledger.record_token(job, "tok", "not completed")
        assert ledger.sweep() == 0
        assert ledger.query("SELECT state, token, attempts FROM jobs")[0] == ("polling", "tok", 1)


def test_identical_content_shares_one_job_and_endpoints_do_not(tmp_path):
    root = os.fsencode(tmp_path)
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        ledger.files.upsert(
            [
                (root, b"a.jpg", root, 10, 1, "same", "active", None),
                (root + b"/sub", b"b.jpg", root, 10, 1, "same", "active", None),
                (root, b"c.jpg", root, 10, 1, "other", "active", None),
            ]
        )
        assert ledger.files.link_folder("http://one/v1", root, ["same", "other"]) == 2
        assert ledger.files.link_folder("http://one/v1", root + b"/sub", ["same"]) == 0  # a copy costs nothing
        assert ledger.files.link_folder("http://one/v1", root, ["same", "other"]) == 0
        assert ledger.query("SELECT count(DISTINCT job_id), count(*) FROM files") == [(2, 3)]
        assert ledger.files.link_folder("emulator", root, ["same", "other"]) == 2
        # Only the folder looked at moves to the new endpoint's jobs; the copy in sub/ keeps its own.
        rows = ledger.query(
            "SELECT j.endpoint, count(*) FROM files f JOIN jobs j ON j.id = f.job_id GROUP BY 1 ORDER BY 1"
        )
        assert rows == [("emulator", 2), ("http://one/v1", 1)]


def test_non_utf8_names_round_trip(tmp_path):
    root = os.fsencode(tmp_path)
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        ledger.files.upsert([(root, b"caf\xe9.jpg", root, 1, 1, "h", "active", None)])
        assert b"caf\xe9.jpg" in ledger.files.in_folder(root)
        ledger.files.link_folder("e", root, ["h"])
        job = ledger.jobs_in_state("e", JobState.QUEUED)[0]
        assert ledger.sources_of(job.id) == [root + b"/caf\xe9.jpg"]


def test_integrity_after_use(tmp_path):
    path = tmp_path / "l.sqlite"
    with Ledger(str(path)) as ledger:
        _one_job(ledger, tmp_path)
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_the_ledger_owns_every_sql_statement():
    import re

    import tagger

    package = Path(tagger.__file__).parent
    # The emulator (a stand-in for the service, with its own state file) and the shared store (PostgreSQL)
    # hold SQL of their own: every statement against the ledger lives in tagger/ledger/.
    own = {"ledger", "emulator", "shared"}
    modules = [m for m in sorted(package.rglob("*.py")) if not own & set(m.relative_to(package).parts)]
    assert len(modules) > 40
    for module in modules:
        text = module.read_text(encoding="utf-8")
        assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP)\s", text), module.name
        assert ".query(" not in text and ".execute(" not in text, module.name


def test_summary_counts_every_status_and_reason_under_the_roots_only(tmp_path):
    from tagger.ledger.store import file_status, under_roots

    roots = [b"/photos/a", b"/photos/b"]
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        # Every job state, each shared by files in and out of the roots; plus unlinked, failed and missing files.
        states = ["queued", "submitting", "polling", "completed", "skipped", "timeout", "not_found", "failed", "held"]
        rows, n = [], 0
        for i, state in enumerate(states):
            for d in (b"/photos/a", b"/photos/a/sub", b"/photos/b", b"/photos/c", b"/photos/ab"):
                for _k in range(i + 1):
                    n += 1
                    rows.append((d, b"f%d.jpg" % n, d, 10, n, f"h{state}", "active", None))
        rows.append((b"/photos/a", b"unlinked.jpg", b"/photos/a", 1, 1, "hnone", "active", None))
        rows.append((b"/photos/a", b"unreadable.jpg", b"/photos/a", 1, 1, None, "failed", "cannot read the file"))
        rows.append((b"/photos/b", b"gone.jpg", b"/photos/b", 1, 1, "hcompleted", "missing", None))
        rows.append((b"/photos/b", b"badsidecar.jpg", b"/photos/b", 1, 1, "hcompleted", "active", None))
        ledger.files.upsert(rows)
        for d in (b"/photos/a", b"/photos/a/sub", b"/photos/b", b"/photos/c", b"/photos/ab"):
            ledger.files.link_folder("ep", d, [f"h{s}" for s in states])
        with ledger.transaction() as c:
            for state in states:
                reason = {"skipped": "blurry", "failed": "rejected", "timeout": "late"}.get(state)
                error = {"queued": "the service was unreachable", "held": "the answer was lost"}.get(state)
                c.execute(
                    "UPDATE jobs SET state = ?, reason = ?, last_error = ? WHERE content_hash = ?",
                    (state, reason, error, f"h{state}"),
                )
            c.execute("UPDATE files SET job_id = NULL WHERE name = ?", (b"unlinked.jpg",))
        unwritable = ledger.query("SELECT id FROM files WHERE name = ?", (b"badsidecar.jpg",))[0][0]
        ledger.files.mark_failed(unwritable, "sidecar not writable")

        def reference(roots):
            # The plain grouped join the summary replaces, and the same status mapping.
            where, params = under_roots(roots) if roots else ("1", [])
            counts, reasons = {}, {}
            for fstate, jstate, reason, last_error, k in ledger.query(
                f"""SELECT f.state, j.state, coalesce(f.reason, j.reason), j.last_error, count(*) FROM files f
                    LEFT JOIN jobs j ON j.id = f.job_id WHERE {where} GROUP BY 1, 2, 3, 4""",
                params,
            ):
                status = file_status(fstate, jstate)
                counts[status] = counts.get(status, 0) + k
                if status in ("skipped", "failed", "timeout", "not found") and reason:
                    reasons[f"{status}: {reason}"] = reasons.get(f"{status}: {reason}", 0) + k
                elif status == "pending" and last_error:
                    key = f"{'held' if jstate == 'held' else 'pending'}: {last_error}"
                    reasons[key] = reasons.get(key, 0) + k
            return counts, reasons

        for scope in (roots, [b"/photos/c"], None):
            got = ledger.readout.summary(scope, remote=False)
            counts, reasons = reference(scope)
            assert {k: v for k, v in got.items() if k in counts} == counts
            assert all(
                got[k] == 0
                for k in ("completed", "skipped", "timeout", "not found", "failed", "pending", "missing")
                if k not in counts
            )
            assert got["total"] == sum(v for k, v in counts.items() if k != "missing")
            assert got["reasons"] == reasons
        got = ledger.readout.summary(roots, remote=False)
        # By hand: per state i+1 files in each of /photos/a, /photos/a/sub, /photos/b (not /photos/c, /photos/ab).
        assert got["pending"] == 3 * (1 + 2 + 3 + 9) + 1  # queued, submitting, polling, held; and the unlinked file
        assert got["held"] == 3 * 9
        assert got["completed"] == 3 * 4 and got["skipped"] == 3 * 5 and got["timeout"] == 3 * 6
        assert got["not found"] == 3 * 7
        assert got["failed"] == 3 * 8 + 2 and got["missing"] == 1
        assert got["reasons"] == {
            "skipped: blurry": 15,
            "timeout: late": 18,
            "failed: rejected": 24,
            "failed: cannot read the file": 1,
            "failed: sidecar not writable": 1,
            "pending: the service was unreachable": 3,
            "held: the answer was lost": 27,
        }
