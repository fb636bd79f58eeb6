"""The ledger's memory does not depend on spelling, and a run touches only what it was pointed at.

Real runs against the emulator over loopback, real SQLite files, sidecars
read back with exiftool: ``~``, config-relative and respelt ledger paths
find one ledger; respelt endpoints and locales send nothing again; a
deleted ledger takes every caption back from the sidecars; sidecars off,
then on; a run over one folder leaves another's queue and sidecars alone;
an unwritable sidecar is tried again until the user fixes it; a locale is
a job of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils
from helpers import config_for, dry_with, exiftool_json, make_photo, queue_jobs, run_with

from tagger.config import default_ledger_path, load_config
from tagger.emulator import Emulator, Faults
from tagger.ledger.keys import normal_endpoint, normal_locale
from tagger.ledger.migrations import MIGRATIONS, NAMES
from tagger.ledger.store import JobState, Ledger
from tagger.pipeline.dryrun import dry_run
from tagger.pipeline.runner import make_api, run


def _rows(ledger: Path | str, sql: str, params: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(ledger)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _tagger(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_", "XDG_"))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-P", "-m", "tagger", *args], capture_output=True, text=True, env=full, cwd=cwd, timeout=180
    )


def _sidecars(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*.xmp"))}


def _delete_ledger(path: str) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


FAST_TOML = "first_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n"


# --- paths -------------------------------------------------------------------


@pytest.mark.slow
def test_tilde_config_relative_and_respelt_ledger_paths_are_one_ledger(photos, tmp_path):
    home = tmp_path / "home"
    (home / "cfg").mkdir(parents=True)
    elsewhere = tmp_path / "cron-cwd"
    elsewhere.mkdir()
    relative = home / "cfg" / "relative.toml"
    relative.write_text(f'[run]\nledger = "data/ledger.sqlite"\n{FAST_TOML}')
    tilde = home / "cfg" / "tilde.toml"
    tilde.write_text(f'[run]\nledger = "~/cfg/data/ledger.sqlite"\n{FAST_TOML}')
    expected = home / "cfg" / "data" / "ledger.sqlite"
    with Emulator(latency=(0.05, 0.1)) as emu:
        env = {"HOME": str(home), "CLOUDSIGHT_API_KEY": emu.key, "CLOUDSIGHT_ENDPOINT": emu.url}
        first = _tagger("--config", str(relative), "run", str(photos), "--quiet", env=env, cwd=elsewhere)
        assert first.returncode == 0, first.stderr
        assert expected.exists()
        assert emu.counters()["submissions"] == 6
        # The same file spelt four more ways, from other working folders: nothing is sent again.
        spellings = [  # (options before the command, after it, environment)
            (["--config", str(tilde)], [], {}),
            (["--config", "~/cfg/relative.toml"], [], {}),
            (["--config", str(relative)], [], {"TAGGER_LEDGER": "~/cfg/data/ledger.sqlite"}),
            (["--config", str(relative)], ["--ledger=~/cfg/./data/../data/ledger.sqlite"], {}),
        ]
        for before, after, more_env in spellings:
            again = _tagger(*before, "run", str(photos), "--quiet", *after, env={**env, **more_env}, cwd=tmp_path)
            assert again.returncode == 0, (before, after, more_env, again.stderr)
            assert emu.counters()["submissions"] == 6, (before, after, more_env)
            assert "submitted 0" in again.stdout
    # No ledger was created anywhere else: not in the working folders, not under a folder named "~".
    ledgers = sorted(p for p in tmp_path.rglob("*.sqlite"))
    assert ledgers == [expected]
    assert not list(tmp_path.rglob("~"))


@pytest.mark.slow
def test_the_default_ledger_is_the_user_data_folder_where_it_always_was_on_linux(photos, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert default_ledger_path() == str(home / ".local" / "share" / "tagger" / "ledger.sqlite")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_ledger_path() == str(tmp_path / "xdg" / "tagger" / "ledger.sqlite")
    # ``~`` in the config file, the environment and flags; a relative path in the file is the file's.
    cfg = tmp_path / "conf" / "t.toml"
    cfg.parent.mkdir()
    cfg.write_text('[run]\nledger = "~/l.sqlite"\n[output]\ncsv = "out/c.csv"\nsidecar_dir = "~/side"\n')
    config = load_config(str(cfg), environ={})
    assert (config.ledger_path, config.csv, config.sidecar_dir) == (
        str(home / "l.sqlite"),
        str(tmp_path / "conf" / "out" / "c.csv"),
        str(home / "side"),
    )
    config = load_config(None, {"csv": "~/x.csv"}, environ={"TAGGER_LEDGER": "~/e.sqlite"})
    assert (config.ledger_path, config.csv) == (str(home / "e.sqlite"), str(home / "x.csv"))
    # A run without --ledger, from cron's folder, uses the default and finds it again.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    with Emulator(latency=(0.05, 0.1)) as emu:
        fast = tmp_path / "fast.toml"
        fast.write_text(f"[run]\n{FAST_TOML}")
        env = {"HOME": str(home), "CLOUDSIGHT_API_KEY": emu.key, "CLOUDSIGHT_ENDPOINT": emu.url}
        for _ in range(2):
            done = _tagger("--config", str(fast), "run", str(photos), "--quiet", env=env, cwd=cwd)
            assert done.returncode == 0, done.stderr
        assert emu.counters()["submissions"] == 6
    assert (home / ".local" / "share" / "tagger" / "ledger.sqlite").exists()
    assert not list(cwd.iterdir())


# --- endpoints -----------------------------------------------------------------


def test_endpoints_compare_in_a_normal_form():
    base = "https://api.cloudsight.ai/v1"
    for spelling in (
        "HTTPS://API.CloudSight.ai/v1/",
        "https://api.cloudsight.ai:443/v1",
        "https://api.cloudsight.ai/v1//",
    ):
        assert normal_endpoint(spelling) == base
    assert normal_endpoint("http://127.0.0.1:80/v1/") == "http://127.0.0.1/v1"
    assert normal_endpoint("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"
    assert normal_endpoint("https://key:secret@api.cloudsight.ai/v1") == base  # credentials never reach the ledger
    assert normal_endpoint("emulator") == "emulator"
    assert normal_endpoint("https://api.cloudsight.ai/V1") != base  # a path is case-sensitive
    assert (normal_locale("de_de"), normal_locale("EN-us"), normal_locale("zh-hant-tw")) == (
        "de-DE",
        "en-US",
        "zh-Hant-TW",
    )


@pytest.mark.slow
def test_a_respelt_endpoint_sends_nothing_the_second_time(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path)
    assert run_with(emulator, config, [photos]).exit_code == 0
    assert emulator.counters()["submissions"] == 6
    port = emulator.url.split(":")[2].split("/")[0]
    for spelling in (f"HTTP://127.0.0.1:{port}/v1/", f"http://127.0.0.1:{port}/v1//"):
        dry = dry_with(emulator, config.replace(endpoint=spelling), [photos])
        assert dry.plan.credits == 0, spelling
        result = run_with(emulator, config.replace(endpoint=spelling), [photos])
        assert result.exit_code == 0 and result.tally.submitted == 0, spelling
    assert emulator.counters()["submissions"] == 6
    assert _rows(config.ledger_path, "SELECT DISTINCT endpoint FROM jobs") == [(emulator.url,)]
    assert {r[0] for r in _rows(config.ledger_path, "SELECT endpoint FROM runs")} == {emulator.url}


def _pre_m008_ledger(path: Path) -> None:
    """A ledger as the last release left it: endpoints as typed, a sidecar failure marked failed."""
    db = sqlite_utils.Database(path)
    MIGRATIONS.apply(db, stop_before=["m008_job_locale_endpoint"])
    c = db.conn
    c.execute("INSERT INTO runs (started_at, endpoint, pid) VALUES (1, 'HTTPS://Api.Example/v1/', 1)")
    c.executemany(
        "INSERT INTO jobs (id, content_hash, endpoint, state, token, caption, created_at) VALUES (?, ?, ?, ?, ?, ?, 1)",
        [
            (1, "h1", "https://api.example/v1/", "queued", None, None),
            (2, "h1", "HTTPS://api.example:443/v1", "completed", "tok2", "a red bicycle"),
            (3, "h2", "https://api.example/v1", "completed", "tok3", "a cat"),
            (4, "h2", "emulator", "completed", "tok4", "an emulated cat"),
        ],
    )
    c.executemany(
        "INSERT INTO files (id, dir, name, root, size, mtime_ns, content_hash, state, reason, job_id, written_job, first_seen, last_seen)"
        " VALUES (?, '/a', ?, '/a', 1, 1, ?, ?, ?, ?, ?, 1, 1)",
        [
            (1, b"one.jpg", "h1", "active", None, 1, None),
            (
                2,
                b"two.jpg",
                "h2",
                "failed",
                "sidecar not written: /a/two.jpg.xmp: cannot read (Is a directory)",
                3,
                None,
            ),
            (3, b"bad.jpg", None, "failed", "cannot read the file: Permission denied", None, None),
        ],
    )
    c.execute("INSERT INTO remote (url, job_id, first_seen, last_seen) VALUES ('https://x/y.jpg', 1, 1, 1)")
    c.commit()
    db.close()


def test_m008_normalises_stored_endpoints_keeps_emulator_and_adds_the_locale(tmp_path):
    path = tmp_path / "old.sqlite"
    _pre_m008_ledger(path)
    with Ledger(str(path)) as ledger:
        assert [m.name for m in MIGRATIONS.applied(ledger.db)] == list(NAMES)
    jobs = _rows(path, "SELECT id, content_hash, endpoint, locale, state, token FROM jobs ORDER BY id")
    # The two spellings of one content were one job: the completed one wins, the queued twin is gone.
    assert jobs == [
        (2, "h1", "https://api.example/v1", "en-US", "completed", "tok2"),
        (3, "h2", "https://api.example/v1", "en-US", "completed", "tok3"),
        (4, "h2", "emulator", "en-US", "completed", "tok4"),
    ]
    assert _rows(path, "SELECT id, job_id FROM files ORDER BY id") == [(1, 2), (2, 3), (3, None)]
    assert _rows(path, "SELECT job_id FROM remote") == [(2,)]
    assert _rows(path, "SELECT endpoint FROM runs") == [("https://api.example/v1",)]
    # A sidecar failure no longer fails the file; an unreadable file still does.
    assert _rows(path, "SELECT id, state, reason IS NULL, sidecar_error IS NOT NULL FROM files ORDER BY id") == [
        (1, "active", 1, 0),
        (2, "active", 1, 1),
        (3, "failed", 0, 0),
    ]
    assert _rows(path, "PRAGMA foreign_key_check") == []
    # The key is (content, endpoint, locale): the same content in German is another job.
    con = sqlite3.connect(path)
    try:
        con.execute(
            "INSERT INTO jobs (content_hash, endpoint, locale, state, created_at) VALUES ('h1', 'https://api.example/v1', 'de-DE', 'queued', 1)"
        )
        try:
            con.execute(
                "INSERT INTO jobs (content_hash, endpoint, locale, state, created_at) VALUES ('h1', 'https://api.example/v1', 'en-US', 'queued', 1)"
            )
            raise AssertionError("the old key still holds")
        except sqlite3.IntegrityError:
            pass
    finally:
        con.close()
    with Ledger(str(path)) as ledger:
        summary = ledger.readout.summary()
        schema = _rows(path, "SELECT name, sql FROM sqlite_master ORDER BY name")
        # Run again (a crash before sqlite-utils recorded it): nothing changes.
        import importlib

        importlib.import_module("tagger.ledger.migrations.m008_job_locale_endpoint").apply(ledger.db)
    assert _rows(path, "SELECT name, sql FROM sqlite_master ORDER BY name") == schema
    assert {name for name, _ in schema} >= {"jobs_state", "jobs_endpoint_state", "jobs_endpoint_locale_state"}
    assert (summary["unwritten"], summary["failed"]) == (1, 1)


# --- a lost ledger -----------------------------------------------------------------


@pytest.mark.slow
def test_a_deleted_ledger_adopts_every_caption_from_the_sidecars(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path)
    assert run_with(emulator, config, [photos]).exit_code == 0
    captions = dict(_rows(config.ledger_path, "SELECT f.name, j.caption FROM files f JOIN jobs j ON j.id = f.job_id"))
    tokens = {r[0] for r in _rows(config.ledger_path, "SELECT token FROM jobs")}
    before = _sidecars(photos)
    assert len(before) == 6
    _delete_ledger(config.ledger_path)
    emulator.reset_counters()

    dry = dry_with(emulator, config, [photos])
    assert (dry.plan.new, dry.plan.adopted, dry.plan.credits) == (6, 6, 0)
    result = run_with(emulator, config, [photos])
    assert result.exit_code == 0, result.stopped
    assert (result.plan.adopted, result.plan.credits, result.tally.submitted) == (6, 0, 0)
    assert emulator.counters()["submissions"] == 0 and emulator.counters()["polls"] == 0
    assert _sidecars(photos) == before  # the sidecars were not even rewritten
    assert (
        dict(_rows(config.ledger_path, "SELECT f.name, j.caption FROM files f JOIN jobs j ON j.id = f.job_id"))
        == captions
    )
    assert {r[0] for r in _rows(config.ledger_path, "SELECT token FROM jobs")} == tokens
    assert _rows(config.ledger_path, "SELECT DISTINCT state FROM jobs") == [("completed",)]
    # The sidecar says which content its caption belongs to, in tagger's namespace.
    (meta,) = exiftool_json(photos / "IMG_0000.JPG.xmp")
    assert (
        meta["XMP-tagger:ContentHash"]
        == _rows(config.ledger_path, "SELECT content_hash FROM files WHERE name = ?", (b"IMG_0000.JPG",))[0][0]
    )
    assert meta["XMP-tagger:Locale"] == "en-US"
    # Nothing more on the next run, either.
    assert run_with(emulator, config, [photos]).tally.submitted == 0
    assert emulator.counters()["submissions"] == 0


@pytest.mark.slow
def test_a_lost_ledger_pays_only_for_content_that_changed_and_works_with_a_sidecar_dir(emulator, photos, tmp_path):
    mirror = tmp_path / "mirror"
    config = config_for(emulator, tmp_path, sidecar_dir=str(mirror))
    assert run_with(emulator, config, [photos]).exit_code == 0
    assert len(_sidecars(mirror)) == 6 and not _sidecars(photos)
    _delete_ledger(config.ledger_path)
    make_photo(photos / "IMG_0000.JPG", seed=999)  # new pixels: its sidecar's caption is for other content
    shutil.copy(photos / "sub" / "IMG_0001.JPG", photos / "sub" / "copy.JPG")  # a copy has no sidecar of its own
    emulator.reset_counters()
    dry = dry_with(emulator, config, [photos])
    assert (dry.plan.adopted, dry.plan.credits) == (5, 1)
    result = run_with(emulator, config, [photos])
    assert result.exit_code == 0, result.stopped
    assert (result.plan.adopted, result.tally.submitted) == (5, 1)
    assert emulator.counters()["submissions"] == 1
    # The copy shares the adopted caption and gets its own sidecar; the changed file its new caption.
    copy_meta, orig_meta, changed = exiftool_json(
        mirror / "sub" / "copy.JPG.xmp", mirror / "sub" / "IMG_0001.JPG.xmp", mirror / "IMG_0000.JPG.xmp"
    )
    assert copy_meta["XMP-dc:Description"] == orig_meta["XMP-dc:Description"]
    caption = _rows(
        config.ledger_path,
        "SELECT j.caption FROM files f JOIN jobs j ON j.id = f.job_id WHERE f.name = ?",
        (b"IMG_0000.JPG",),
    )[0][0]
    assert changed["XMP-dc:Description"] == caption


# --- scope ---------------------------------------------------------------------


@pytest.mark.slow
def test_a_csv_only_run_defers_the_sidecars_to_the_next_run_with_sidecars(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path)
    csv_path = tmp_path / "out.csv"
    from tagger.exports.readout import iter_records
    from tagger.exports.writer import write_export

    first = run_with(
        emulator,
        config.replace(sidecars=False),
        [photos],
        export=lambda ledger: write_export(iter_records(ledger), str(csv_path)),
    )
    assert first.exit_code == 0 and first.csv_rows == 6
    assert not _sidecars(photos)
    second = run_with(emulator, config, [photos])
    assert second.exit_code == 0
    assert (second.tally.submitted, second.sidecars_written) == (0, 6)
    assert len(_sidecars(photos)) == 6
    assert emulator.counters()["submissions"] == 6


@pytest.mark.slow
def test_a_run_over_one_folder_leaves_another_folder_s_queue_and_sidecars_alone(emulator, tmp_path):
    root = tmp_path / "photos"
    a, b = root / "A", root / "B"
    for i in range(3):
        make_photo(a / f"a{i}.jpg", seed=10 + i)
        make_photo(b / f"b{i}.jpg", seed=20 + i)
    config = config_for(emulator, tmp_path)
    # B's jobs get queued and are left unsent, A is captioned with sidecars off.
    assert queue_jobs(config, [b], emulator.url) == 3 and emulator.counters()["submissions"] == 0
    assert run_with(emulator, config.replace(sidecars=False), [a]).exit_code == 0
    assert emulator.counters()["submissions"] == 3
    # A run over A with sidecars on: writes A's sidecars, sends none of B's queued jobs, writes none of B's.
    dry = dry_with(emulator, config, [a])
    assert dry.plan.credits == 0
    over_a = run_with(emulator, config, [a])
    assert over_a.exit_code == 0 and over_a.tally.submitted == 0 and over_a.sidecars_written == 3
    assert emulator.counters()["submissions"] == 3
    assert len(_sidecars(a)) == 3 and not _sidecars(b)
    assert _rows(config.ledger_path, "SELECT count(*) FROM jobs WHERE state = 'queued'") == [(3,)]
    # A run over B sends B's, as the dry run over B said.
    assert dry_with(emulator, config, [b]).plan.credits == 3
    over_b = run_with(emulator, config, [b])
    assert over_b.exit_code == 0 and over_b.tally.submitted == 3
    assert emulator.counters()["submissions"] == 6 and len(_sidecars(b)) == 3


@pytest.mark.slow
def test_tokens_another_folder_left_outstanding_are_collected_but_its_sidecars_wait(emulator, tmp_path):
    root = tmp_path / "photos"
    a, b = root / "A", root / "B"
    for i in range(2):
        make_photo(a / f"a{i}.jpg", seed=50 + i)
        make_photo(b / f"b{i}.jpg", seed=60 + i)
    config = config_for(emulator, tmp_path)
    assert queue_jobs(config, [b], emulator.url) == 2
    # As a run over B killed after its POSTs leaves it: B's jobs hold tokens the service is working on.
    with Ledger(config.ledger_path) as ledger, make_api(config) as api:
        for job in ledger.jobs_in_state(emulator.url, JobState.QUEUED):
            (source,) = ledger.sources_of(job.id)
            with open(source, "rb") as f:
                answer = api.image_request(f, "photo.jpg", {"image_request[locale]": "en-US"})
            ledger.begin_submit(job.id)
            ledger.record_token(job.id, answer["token"], answer.get("status"))
    assert emulator.counters()["submissions"] == 2
    over_a = run_with(emulator, config, [a])
    assert over_a.exit_code == 0 and over_a.tally.submitted == 2
    # B's tokens were paid for: collected, not lost; but B's sidecars wait for a run over B.
    states = dict(_rows(config.ledger_path, "SELECT f.name, j.state FROM files f JOIN jobs j ON j.id = f.job_id"))
    assert states == {b"a0.jpg": "completed", b"a1.jpg": "completed", b"b0.jpg": "completed", b"b1.jpg": "completed"}
    assert len(_sidecars(a)) == 2 and not _sidecars(b)
    over_b = run_with(emulator, config, [b])
    assert over_b.exit_code == 0 and (over_b.tally.submitted, over_b.sidecars_written) == (0, 2)
    assert emulator.counters()["submissions"] == 4 and len(_sidecars(b)) == 2


@pytest.mark.slow
def test_retry_takes_paths(tmp_path):
    root = tmp_path / "photos"
    for i in range(2):
        make_photo(root / "A" / f"a{i}.jpg", seed=30 + i)
        make_photo(root / "B" / f"b{i}.jpg", seed=40 + i)
    cfg = tmp_path / "fast.toml"
    cfg.write_text(f"[run]\n{FAST_TOML}")
    ledger = str(tmp_path / "l.sqlite")
    with Emulator(latency=(0.05, 0.1), faults=Faults(unsure_rate=1.0)) as emu:
        env = {"CLOUDSIGHT_API_KEY": emu.key, "CLOUDSIGHT_ENDPOINT": emu.url}
        assert (
            _tagger("--config", str(cfg), "run", str(root), "--ledger", ledger, env=env, cwd=tmp_path).returncode == 0
        )
        assert emu.counters()["submissions"] == 4
        emu.set_faults(Faults())
        retry = _tagger("retry", str(root / "A"), "--skipped", "unsure", "--ledger", ledger, env=env, cwd=tmp_path)
        assert retry.returncode == 0 and "2 jobs queued again" in retry.stdout, retry.stdout + retry.stderr
        again = _tagger("--config", str(cfg), "run", str(root), "--ledger", ledger, env=env, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert emu.counters()["submissions"] == 6
    status = json.loads(_tagger("status", "--ledger", ledger, "--json", env={}, cwd=tmp_path).stdout)
    assert (status["completed"], status["skipped"]) == (2, 2)
    states = dict(_rows(ledger, "SELECT f.name, j.state FROM files f JOIN jobs j ON j.id = f.job_id"))
    assert states == {b"a0.jpg": "completed", b"a1.jpg": "completed", b"b0.jpg": "skipped", b"b1.jpg": "skipped"}


# --- sidecars that could not be written ---------------------------------------------


@pytest.mark.slow
def test_an_unwritable_sidecar_is_tried_on_every_run_and_written_once_fixed(photos, tmp_path):
    broken = photos / "IMG_0000.JPG.xmp"
    broken.write_bytes(b"<x:xmpmeta this is not XML")
    blocked = photos / "sub" / "IMG_0001.JPG.xmp"
    blocked.mkdir()  # a folder where the sidecar should be
    cfg = tmp_path / "fast.toml"
    cfg.write_text(f"[run]\n{FAST_TOML}")
    ledger = str(tmp_path / "l.sqlite")
    with Emulator(latency=(0.05, 0.1)) as emu:
        env = {"CLOUDSIGHT_API_KEY": emu.key, "CLOUDSIGHT_ENDPOINT": emu.url}
        for _ in range(2):  # every run tries again, and says so
            run = _tagger("--config", str(cfg), "run", str(photos), "--ledger", ledger, env=env, cwd=tmp_path)
            assert run.returncode == 1, run.stderr
            assert "sidecar not written" in run.stderr
        assert broken.read_bytes() == b"<x:xmpmeta this is not XML"  # left exactly as it was
        status = _tagger("status", "--ledger", ledger, env={}, cwd=tmp_path)
        assert "4 completed" in status.stdout and "0 failed" in status.stdout and "2 unwritten" in status.stdout
        assert "unwritten: sidecar not written" in status.stdout
        assert _rows(ledger, "SELECT DISTINCT state FROM files") == [("active",)]
        # The user fixes both; the next plain run writes them, sends nothing, exits 0.
        broken.unlink()
        blocked.rmdir()
        fixed = _tagger("--config", str(cfg), "run", str(photos), "--ledger", ledger, env=env, cwd=tmp_path)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert emu.counters()["submissions"] == 6
    captions = dict(_rows(ledger, "SELECT f.name, j.caption FROM files f JOIN jobs j ON j.id = f.job_id"))
    first, second = exiftool_json(broken, blocked)
    assert first["XMP-dc:Description"] == captions[b"IMG_0000.JPG"]
    assert second["XMP-dc:Description"] == captions[b"IMG_0001.JPG"]
    data = json.loads(_tagger("status", "--ledger", ledger, "--json", env={}, cwd=tmp_path).stdout)
    assert (data["completed"], data["unwritten"], data["failed"]) == (6, 0, 0)


# --- locales -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_locale_is_a_job_of_its_own(emulator, photos, tmp_path):
    config = config_for(emulator, tmp_path)
    assert run_with(emulator, config, [photos]).tally.submitted == 6
    german = config.replace(locale="de-DE")
    assert dry_with(emulator, german, [photos]).plan.credits == 6
    de = run_with(emulator, german, [photos])
    assert de.exit_code == 0 and de.tally.submitted == 6
    assert emulator.counters()["submissions"] == 12
    rows = _rows(
        config.ledger_path, "SELECT locale, count(*), count(DISTINCT token) FROM jobs GROUP BY locale ORDER BY locale"
    )
    assert rows == [("de-DE", 6, 6), ("en-US", 6, 6)]
    (meta,) = exiftool_json(photos / "IMG_0000.JPG.xmp")
    assert meta["XMP-tagger:Locale"] == "de-DE"
    # Exports: one row per file, with the caption of the configured locale; none yet in French.
    from tagger.exports.readout import iter_records

    by_locale = {}
    for locale in ("en-US", "de-DE", "fr-FR"):
        with Ledger(config.ledger_path, locale=locale) as ledger:
            records = list(iter_records(ledger))
        assert len(records) == 6
        by_locale[locale] = {r.filename: (r.status, r.caption, r.token) for r in records}
    for name in by_locale["en-US"]:
        en, de_, fr = by_locale["en-US"][name], by_locale["de-DE"][name], by_locale["fr-FR"][name]
        assert en[0] == de_[0] == "completed" and en[2] != de_[2]
        assert en[1] == _rows(config.ledger_path, "SELECT caption FROM jobs WHERE token = ?", (en[2],))[0][0]
        assert fr == ("pending", None, None)
    # Back in English (and German respelt): nothing is sent, the English captions come back.
    for locale in ("en-US", "de_de", "en-us"):
        assert dry_with(emulator, config.replace(locale=locale), [photos]).plan.credits == 0, locale
        again = run_with(emulator, config.replace(locale=locale), [photos])
        assert again.exit_code == 0 and again.tally.submitted == 0, locale
    assert emulator.counters()["submissions"] == 12
    english = dict(_rows(config.ledger_path, "SELECT f.name, j.caption FROM files f JOIN jobs j ON j.id = f.job_id"))
    assert english == dict(
        _rows(
            config.ledger_path,
            "SELECT f.name, j.caption FROM files f JOIN jobs j ON j.content_hash = f.content_hash WHERE j.locale = 'en-US'",
        )
    )
    (meta,) = exiftool_json(photos / "IMG_0000.JPG.xmp")
    assert meta["XMP-tagger:Locale"] == "en-US"
    # A lost ledger adopts only the locale the sidecar holds: German is paid again, English is not.
    _delete_ledger(config.ledger_path)
    assert dry_with(emulator, config, [photos]).plan.credits == 0
    assert dry_with(emulator, german, [photos]).plan.credits == 6


@pytest.mark.slow
def test_the_default_port_is_the_same_endpoint(emulator, photos, tmp_path):
    # The requests go to the emulator's real port; the ledger names the service as the user spelt it.
    config = config_for(emulator, tmp_path)
    with make_api(config) as api:
        first = run(config, [str(photos)], api=api, endpoint_id="http://127.0.0.1:80/v1/")
    assert first.exit_code == 0 and first.tally.submitted == 6
    with make_api(config) as api:
        dry = dry_run(config, [str(photos)], api=api, endpoint_id="HTTP://127.0.0.1/v1")
        again = run(config, [str(photos)], api=api, endpoint_id="HTTP://127.0.0.1/v1")
    assert dry.plan.credits == 0 and again.tally.submitted == 0
    assert emulator.counters()["submissions"] == 6
    assert _rows(config.ledger_path, "SELECT DISTINCT endpoint FROM jobs") == [("http://127.0.0.1/v1",)]
