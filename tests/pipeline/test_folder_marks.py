"""Folder marks (m014): a folder found all done is read from one row, and no change it depends on goes unseen.

Every change is planned twice: on the ledger as it is (marks and all) and on
a twin copy with its marks deleted, which takes the per-file path. The two
must decide the same (the same counts) and leave the same rows behind; and
the change must show in the plan. Real files, real SQLite files.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
from pathlib import Path

import pytest
from helpers import make_photo

from tagger.ledger.planning import MARK_TRIGGERS
from tagger.ledger.store import Ledger
from tagger.pipeline.plan import plan
from tagger.pipeline.scan import MARK_MIN, Folder, scan

END = "bench"
FILES = MARK_MIN + 2


def _clock() -> float:
    return 1000.0  # one clock for both twins: their rows compare equal


def _tree(root: Path) -> list[Path]:
    paths = []
    for folder in ("album", "other"):
        for i in range(FILES):
            paths.append(make_photo(root / folder / f"p{i:02d}.jpg", seed=1000 * len(folder) + i, size=(96, 64)))
    return paths


def _at(root: Path, relative: str) -> tuple[bytes, bytes]:
    """(dir, name) of a file under ``root``, as the ledger keys it."""
    path = os.fsencode(root / relative)
    return os.path.dirname(path), os.path.basename(path)


def _dump(path: Path) -> tuple[list, list]:
    con = sqlite3.connect(path)
    try:
        files = con.execute(
            "SELECT dir, name, size, mtime_ns, content_hash, state, reason, job_id, hash_scheme FROM files ORDER BY id"
        ).fetchall()
        jobs = con.execute("SELECT id, content_hash, endpoint, locale, state FROM jobs ORDER BY id").fetchall()
        return files, jobs
    finally:
        con.close()


def _marked(ledger_path: Path, root: Path, endpoint: str = END, locale: str = "en-US") -> set[str]:
    """The folders under ``root`` whose mark (with their current listing) a plan would take."""
    with Ledger(str(ledger_path), clock=_clock, locale=locale) as ledger:
        return {
            os.path.basename(os.fsdecode(f.path))
            for f in scan([str(root)])
            if f.listing() is not None and ledger.planning.folder_marked(f.path, endpoint, f.listing())
        }


def _twin_plan(tmp_path: Path, ledger_path: Path, root: Path, endpoint: str = END, locale: str = "en-US") -> dict:
    """Plan on the ledger and on a copy without marks; both must decide and write the same."""
    twin = tmp_path / f"twin-{len(list(tmp_path.glob('twin-*')))}.sqlite"
    src, dst = sqlite3.connect(ledger_path), sqlite3.connect(twin)
    src.backup(dst)
    src.close()
    dst.execute("DELETE FROM folder_marks")
    dst.commit()
    dst.close()
    results = []
    for path in (ledger_path, twin):
        with Ledger(str(path), clock=_clock, locale=locale) as ledger:
            results.append(plan(ledger, [str(root)], endpoint).as_dict())
    assert results[0] == results[1]
    assert _dump(ledger_path) == _dump(twin)
    return results[0]


@pytest.fixture
def done(tmp_path):
    """A tree planned twice: every file linked, both folders found all done and marked."""
    root = tmp_path / "photos"
    paths = _tree(root)
    ledger_path = tmp_path / "ledger.sqlite"
    with Ledger(str(ledger_path), clock=_clock) as ledger:
        assert plan(ledger, [str(root)], END).new == 2 * FILES
        assert plan(ledger, [str(root)], END).unchanged == 2 * FILES
    assert _marked(ledger_path, root) == {"album", "other"}
    return root, ledger_path, paths


def test_a_marked_folder_is_taken_as_done_and_stays_marked(done, tmp_path):
    root, ledger_path, _ = done
    result = _twin_plan(tmp_path, ledger_path, root)
    assert result["unchanged"] == 2 * FILES and result["credits"] == 2 * FILES
    assert _marked(ledger_path, root) == {"album", "other"}


def test_a_new_size_is_seen(done, tmp_path):
    root, ledger_path, paths = done
    make_photo(paths[0], seed=9999, size=(128, 80))
    result = _twin_plan(tmp_path, ledger_path, root)
    assert result["changed"] == 1 and result["unchanged"] == 2 * FILES - 1


def test_a_new_mtime_alone_is_seen(done, tmp_path):
    root, ledger_path, paths = done
    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    result = _twin_plan(tmp_path, ledger_path, root)
    assert result["unchanged"] == 2 * FILES  # hashed again: the same pixels
    files, _ = _dump(ledger_path)
    (row,) = [r for r in files if os.path.join(r[0], r[1]) == os.fsencode(paths[1])]
    assert row[3] == st.st_mtime_ns + 5_000_000_000


def test_a_new_file_and_a_deleted_file_are_seen(done, tmp_path):
    root, ledger_path, paths = done
    make_photo(root / "album" / "new.jpg", seed=4242, size=(96, 64))
    paths[-1].unlink()
    result = _twin_plan(tmp_path, ledger_path, root)
    assert result["new"] == 1 and result["missing"] == 1


def test_a_settled_job_keeps_the_mark_and_a_retried_one_is_planned_alike(done, tmp_path):
    root, ledger_path, _ = done
    with Ledger(str(ledger_path), clock=_clock) as ledger, ledger.transaction() as c:
        c.execute("UPDATE jobs SET state = 'completed', status = 'completed', caption = 'x', settled_at = 1")
    # The planner does not weigh a job's state: the marks hold, and the plan is the per-file path's.
    assert _marked(ledger_path, root) == {"album", "other"}
    assert _twin_plan(tmp_path, ledger_path, root)["credits"] == 0
    with Ledger(str(ledger_path), clock=_clock) as ledger:
        with ledger.transaction() as c:
            c.execute("UPDATE jobs SET state = 'failed', reason = 'refused' WHERE id IN (SELECT id FROM jobs LIMIT 3)")
        assert ledger.retry(END, failed=True) == 3
    assert _twin_plan(tmp_path, ledger_path, root)["credits"] == 3


def test_a_rekeyed_identity_drops_the_mark(done, tmp_path):
    root, ledger_path, _ = done
    with Ledger(str(ledger_path), clock=_clock) as ledger:
        ((old,),) = ledger.query(
            "SELECT content_hash FROM files WHERE dir = ? AND name = ?", _at(root, "album/p00.jpg")
        )
        with ledger.transaction() as c:  # as an upgraded ledger holds it: recorded under scheme 1
            c.execute("UPDATE files SET hash_scheme = NULL WHERE content_hash = ?", (old,))
    # A folder with scheme-1 rows is read in full before any mark is looked at (the planner's old_dirs).
    assert _marked(ledger_path, root) == {"album", "other"}
    with Ledger(str(ledger_path), clock=_clock) as ledger:
        ledger.planning.rekey([(old, "f" * 64)])
    assert _marked(ledger_path, root) == {"other"}
    assert _twin_plan(tmp_path, ledger_path, root)["unchanged"] == 2 * FILES


def test_another_endpoint_and_another_locale_are_planned_apart(done, tmp_path):
    root, ledger_path, _ = done
    assert _marked(ledger_path, root, "elsewhere") == set()
    assert _twin_plan(tmp_path, ledger_path, root, "elsewhere")["credits"] == 2 * FILES
    # The files now follow the other endpoint's jobs: this endpoint's marks were dropped with the links.
    assert _marked(ledger_path, root) == set()
    assert _twin_plan(tmp_path, ledger_path, root)["credits"] == 2 * FILES
    assert _marked(ledger_path, root, locale="fr-FR") == set()
    assert _twin_plan(tmp_path, ledger_path, root, locale="fr-FR")["credits"] == 2 * FILES
    assert _marked(ledger_path, root) == set()


def test_edits_to_a_file_row_or_a_linked_job_drop_the_mark(done, tmp_path):
    root, ledger_path, _ = done
    with Ledger(str(ledger_path), clock=_clock) as ledger, ledger.transaction() as c:
        c.execute("UPDATE files SET job_id = NULL WHERE dir = ? AND name = ?", _at(root, "album/p03.jpg"))
    assert _marked(ledger_path, root) == {"other"}
    assert _twin_plan(tmp_path, ledger_path, root)["unchanged"] == 2 * FILES  # linked again, to its job
    assert _marked(ledger_path, root) == {"other"}  # planned in full: marked by the next run that finds it done
    assert _twin_plan(tmp_path, ledger_path, root)["unchanged"] == 2 * FILES
    assert _marked(ledger_path, root) == {"album", "other"}
    with Ledger(str(ledger_path), clock=_clock) as ledger, ledger.transaction() as c:
        c.execute(
            "UPDATE files SET state = 'failed', reason = 'cannot read' WHERE dir = ? AND name = ?",
            _at(root, "album/p03.jpg"),
        )
    assert _marked(ledger_path, root) == {"other"}
    assert _twin_plan(tmp_path, ledger_path, root)["unchanged"] == 2 * FILES
    assert _twin_plan(tmp_path, ledger_path, root)["unchanged"] == 2 * FILES
    assert _marked(ledger_path, root) == {"other"}  # a failed file is not done: its folder is read in full each run
    with Ledger(str(ledger_path), clock=_clock) as ledger, ledger.transaction() as c:
        c.execute(
            "UPDATE jobs SET endpoint = 'moved' WHERE id = (SELECT job_id FROM files WHERE dir = ? AND name = ?)",
            _at(root, "other/p01.jpg"),
        )
    assert _marked(ledger_path, root) == set()
    _twin_plan(tmp_path, ledger_path, root)
    with Ledger(str(ledger_path), clock=_clock) as ledger:  # seen: the file is linked to a job of this endpoint again
        assert (
            ledger.query(
                "SELECT j.endpoint FROM files f JOIN jobs j ON j.id = f.job_id WHERE f.dir = ? AND f.name = ?",
                _at(root, "other/p01.jpg"),
            )[0][0]
            == END
        )
    with Ledger(str(ledger_path), clock=_clock) as ledger, ledger.transaction() as c:
        c.execute("DELETE FROM files WHERE dir = ? AND name = ?", _at(root, "other/p04.jpg"))
    assert _marked(ledger_path, root) == set()
    assert _twin_plan(tmp_path, ledger_path, root)["new"] == 1


def test_writing_the_sidecar_state_keeps_the_mark(done):
    root, ledger_path, _ = done
    with Ledger(str(ledger_path), clock=_clock) as ledger, ledger.transaction() as c:
        c.execute("UPDATE files SET written_job = job_id, written_at = 5, sidecar = dir || '/' || name || '.xmp'")
    assert _marked(ledger_path, root) == {"album", "other"}


def test_no_mark_is_written_over_a_change_made_after_the_folder_was_read(done):
    root, ledger_path, _ = done
    album = next(f for f in scan([str(root)]) if f.path.endswith(b"album"))
    with Ledger(str(ledger_path), clock=_clock) as ledger:
        with ledger.transaction() as c:
            c.execute("DELETE FROM folder_marks")
        stamp = ledger.planning.folder_stamp()
        ledger.files.upsert([(album.path, b"late.jpg", album.root, 1, 1, "0" * 64, "active", None)])
        assert not ledger.planning.mark_folder(album.path, END, album.listing(), stamp)
        # Another connection's commit counts too.
        stamp = ledger.planning.folder_stamp()
        other = sqlite3.connect(ledger_path)
        other.execute("UPDATE files SET size = size + 1 WHERE name = CAST('late.jpg' AS BLOB)")
        other.commit()
        other.close()
        assert not ledger.planning.mark_folder(album.path, END, album.listing(), stamp)
        stamp = ledger.planning.folder_stamp()
        assert ledger.planning.mark_folder(album.path, END, album.listing(), stamp)
        assert ledger.planning.folder_marked(album.path, END, album.listing())


def test_without_its_triggers_no_mark_is_used(done):
    root, ledger_path, _ = done
    con = sqlite3.connect(ledger_path)
    con.execute("DROP TRIGGER folder_marks_job_update")
    con.commit()
    con.close()
    assert _marked(ledger_path, root) == set()


def test_a_dry_run_writes_no_mark(done):
    root, ledger_path, _ = done
    with Ledger(str(ledger_path), clock=_clock) as ledger:
        with ledger.transaction() as c:
            c.execute("DELETE FROM folder_marks")
        assert plan(ledger, [str(root)], END, dry_run=True).unchanged == 2 * FILES
        assert ledger.query("SELECT count(*) FROM folder_marks")[0][0] == 0


def test_the_trigger_names_are_the_migrations():
    m014 = importlib.import_module("tagger.ledger.migrations.m014_noop_indexes")
    assert tuple(m014.TRIGGERS) == MARK_TRIGGERS


def test_a_listing_digest_is_of_names_sizes_and_mtimes_in_order():
    files = [(b"p%02d.jpg" % i, 100 + i, 10**18 + i) for i in range(MARK_MIN)]
    digest = Folder(b"/a", b"/a", list(files)).listing()
    assert digest is not None and Folder(b"/b", b"/b", list(files)).listing() == digest
    for edited in (
        [(files[0][0], files[0][1] + 1, files[0][2])] + files[1:],
        [(files[0][0], files[0][1], files[0][2] + 1)] + files[1:],
        [(b"q00.jpg", files[0][1], files[0][2])] + files[1:],
        files + [(b"extra.jpg", 1, 1)],
        files[::-1],  # another order only misses the mark
    ):
        assert Folder(b"/a", b"/a", edited).listing() != digest
    assert Folder(b"/a", b"/a", files[:-1]).listing() is None
    assert Folder(b"/a", b"/a", list(files), complete=False).listing() is None
