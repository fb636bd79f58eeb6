"""The shared store against a real PostgreSQL and the emulator: claims, links, answers, faults, one view."""

# ruff: noqa: F811  (the PostgreSQL fixtures are imported from tests/pg.py)

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from helpers import exiftool_json, make_photo
from pg import PASSWORD, PgServer, pg_url, postgres  # noqa: F401  (fixtures)
from PIL import Image

from tagger.config import Config
from tagger.emulator import Emulator
from tagger.errors import EXIT_USAGE
from tagger.pipeline import dry_run, run
from tagger.shared import NoShared, SharedError, redact
from tagger.shared.base import Answer, StoreDown
from tagger.shared.migrations import NAMES

FAST = {"first_poll_delay": 0.1, "poll_interval": 0.05, "max_poll_interval": 0.2, "workers": 2, "max_in_flight": 8}


def _config(tmp_path: Path, name: str, emu: Emulator, url: str, **extra) -> Config:
    return Config(
        api_key=emu.key,
        endpoint=emu.url,
        ledger=str(tmp_path / f"{name}.sqlite"),
        shared_url=url,
        shared_machine=name,
        csv=str(tmp_path / f"{name}.csv"),
        **{**FAST, **extra},
    )


def _store(url: str, owner: str, lease: float = 30.0):
    from tagger.shared.open import connect
    from tagger.shared.store import PgStore

    return PgStore(
        url,
        connect(url),
        owner=owner,
        machine=owner,
        endpoint="e",
        locale="en-US",
        scheme=2,
        lease=lease,
        connect=lambda: connect(url),
    )


def test_without_a_url_nothing_changes_and_psycopg_is_not_imported(tmp_path: Path) -> None:
    code = (
        "import sys, tagger.pipeline.runner, tagger.cli; from tagger.shared import open_store;"
        "s = open_store('', ledger_path='x', endpoint='e', locale='en-US', scheme=2);"
        "print(type(s).__name__, 'psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["NoShared", "False"]


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://u:pa%3Ass@h:5/db") == "postgresql://u:***@h:5/db"
    assert redact("postgresql://h/db") == "postgresql://h/db"
    # libpq also takes the password as a query parameter, or in a key=value string.
    assert redact("postgresql://h/db?user=u&password=s3%20x&sslmode=require") == (
        "postgresql://h/db?user=u&password=***&sslmode=require"
    )
    assert redact("postgresql://h/db?sslpassword=k3y-pass") == "postgresql://h/db?sslpassword=***"
    assert redact("host=h password=hunter22 dbname=d") == "host=h password=*** dbname=d"
    assert redact("host=h password='it is' dbname=d") == "host=h password=*** dbname=d"
    # A URL the parser refuses (a broken IPv6 host) still hides its password.
    assert redact("postgresql://u:hunter22@[::1/db") == "postgresql://u:***@[::1/db"


@pytest.mark.parametrize("where", ["query", "keywords"])
def test_a_password_in_the_query_never_reaches_the_output(tmp_path: Path, postgres: PgServer, where: str) -> None:
    secret = "wr0ng-" + PASSWORD[::-1]
    if where == "query":
        url = f"postgresql://tagger_test@{postgres.host}:{postgres.port}/postgres?password={secret}&connect_timeout=5"
    else:
        url = f"host={postgres.host} port={postgres.port} user=tagger_test dbname=postgres password={secret}"
    _tree(tmp_path / "one", range(1))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    with Emulator(latency=(0.05, 0.1)) as emu:
        env.update(CLOUDSIGHT_API_KEY=emu.key, TAGGER_SHARED_URL=url)
        args = ["--ledger", str(tmp_path / "l.sqlite"), "--endpoint", emu.url, str(tmp_path / "one")]
        done = subprocess.run([sys.executable, "-m", "tagger", "run", *args], capture_output=True, text=True, env=env)
        assert emu.counters()["requests"] == 0
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "password authentication failed" in done.stderr
    assert secret not in done.stdout + done.stderr
    assert "***" in done.stderr


def test_one_claim_per_content_the_other_waits_then_links(pg_url: str) -> None:
    from tagger.shared.migrations import apply
    from tagger.shared.open import connect

    apply(connect(pg_url))
    a, b = _store(pg_url, "a"), _store(pg_url, "b")
    try:
        assert a.claim("x").kind == "mine"
        assert b.claim("x").kind == "elsewhere"
        assert a.claim("x").kind == "mine"  # its own claim again (a resumed run): no wait
        assert a.sending("x") is True
        assert b.sending("x") is False  # not b's claim: b must not send
        a.token("x", "tok-1")
        assert b.look(["x"])["x"].kind == "elsewhere"
        a.settled([("x", Answer("completed", "completed", "a red car", None, ("f",), ("car",)))])
        got = b.look(["x"])["x"]
        assert got.kind == "settled" and got.answer is not None and got.answer.caption == "a red car"
        assert got.answer.flags == ("f",)
        assert b.known(["x", "y"]) == {"x"}
    finally:
        a.close()
        b.close()


def test_a_lapsed_claim_is_taken_over_with_its_token_or_counted_as_a_possible_duplicate(pg_url: str) -> None:
    from tagger.shared.migrations import apply
    from tagger.shared.open import connect

    apply(connect(pg_url))
    dead = _store(pg_url, "dead", lease=0.5)
    dead._closing.set()  # no renewal: its claims lapse
    dead._renewer.join()
    live = _store(pg_url, "live")
    try:
        for digest in ("claimed", "sending", "polling"):
            assert dead.claim(digest).kind == "mine"
        assert dead.sending("sending") and dead.sending("polling")
        dead.token("polling", "tok-9")
        dead.close()
        assert {d: c.kind for d, c in live.look(["claimed", "sending", "polling"]).items()} == dict.fromkeys(
            ("claimed", "sending", "polling"), "elsewhere"
        )
        time.sleep(0.8)
        got = live.look(["claimed", "sending", "polling"])
        assert (got["claimed"].kind, got["claimed"].lost, got["claimed"].token) == ("mine", False, None)
        assert (got["sending"].kind, got["sending"].lost) == ("mine", True)  # its POST may have left: counted
        assert (got["polling"].kind, got["polling"].token) == ("mine", "tok-9")  # polled, never sent again
    finally:
        live.close()


def _tree(root: Path, seeds: range, *, resized: range = range(0), copied: range = range(0)) -> None:
    """Photos ``seeds``; of them, ``copied`` byte-equal copies of tree ``one``'s (make_photo's noise is not seeded)."""
    for i in seeds:
        if i in copied:
            root.mkdir(parents=True, exist_ok=True)
            (root / f"IMG_{i:04d}.jpg").write_bytes((root.parent / "one" / f"IMG_{i:04d}.jpg").read_bytes())
        else:
            make_photo(root / f"IMG_{i:04d}.jpg", seed=5000 + i)
    for i in resized:
        src = Image.open(root.parent / "one" / f"IMG_{i:04d}.jpg")
        src.resize((src.width // 2, src.height // 2)).save(root / f"small_{i:04d}.jpg", quality=88)


@pytest.mark.slow
def test_a_second_machine_pays_nothing_for_copies_and_similar_copies(tmp_path: Path, pg_url: str) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _tree(one, range(8))
    _tree(two, range(4, 10), resized=range(3), copied=range(4, 8))  # 4-7 byte-equal, 8-9 new, 3 resized copies of 0-2
    with Emulator(latency=(0.05, 0.1), seed=3) as emu:
        first = run(_config(tmp_path, "one", emu, pg_url), [str(one)], export=None)
        assert first.exit_code == 0 and first.tally.submitted == 8
        second = run(_config(tmp_path, "two", emu, pg_url), [str(two)])
        counters = emu.counters()
    assert second.exit_code == 0, second.stopped
    assert second.tally.submitted == 2  # only the two new pictures
    assert second.tally.shared == 7  # 4 byte-equal + 3 resized: another machine's answers
    assert counters["submissions"] == 10 and counters["duplicates"] == 0
    read = {Path(r["SourceFile"]).name: r for r in exiftool_json(*sorted(two.glob("*.xmp")))}
    assert len(read) == 9
    assert all(r.get("XMP-dc:Description") for r in read.values())


def test_an_unreachable_store_stops_before_anything_is_sent(tmp_path: Path, postgres: PgServer) -> None:
    url = postgres.url("nowhere").replace(f":{postgres.port}/", ":1/")
    _tree(tmp_path / "one", range(2))
    with Emulator(latency=(0.05, 0.1)) as emu:
        with pytest.raises(SharedError) as caught:
            run(_config(tmp_path, "one", emu, url), [str(tmp_path / "one")])
        assert caught.value.exit_code == EXIT_USAGE
        assert "unreachable" in str(caught.value) and PASSWORD not in str(caught.value)
        assert emu.counters()["requests"] == 0
        # shared_required = false: the local ledger alone, and it says so.
        result = run(_config(tmp_path, "one", emu, url, shared_required=False), [str(tmp_path / "one")])
        assert result.exit_code == 0 and result.tally.submitted == 2


@pytest.mark.parametrize("fault", ["password", "database", "newer"])
def test_refused_credentials_a_missing_database_or_a_newer_schema_stop_with_exit_2(
    tmp_path: Path, postgres: PgServer, pg_url: str, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = pg_url
    if fault == "password":
        url = postgres.url(pg_url.rsplit("/", 1)[1], password="wrong-" + PASSWORD)
    elif fault == "database":
        url = postgres.url("no_such_database")
    else:
        from tagger.shared.migrations import apply
        from tagger.shared.open import connect

        with connect(pg_url) as c:
            apply(c)
            c.execute("INSERT INTO tagger_shared_migrations (name) VALUES ('s999_future')")
    _tree(tmp_path / "one", range(2))
    with Emulator(latency=(0.05, 0.1)) as emu:
        with pytest.raises(SharedError) as caught:
            run(_config(tmp_path, "one", emu, url, shared_required=False), [str(tmp_path / "one")])
        assert emu.counters()["requests"] == 0
    text = str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE
    assert {"password": "password authentication failed", "database": "does not exist", "newer": "s999_future"}[
        fault
    ] in text
    assert PASSWORD not in text and PASSWORD not in caplog.text
    if fault == "newer":
        with psycopg.connect(pg_url) as c:  # left untouched
            assert c.execute("SELECT count(*) FROM tagger_shared_migrations").fetchone()[0] == len(NAMES) + 1


def test_no_shared_is_a_no_op() -> None:
    s = NoShared()
    assert s.claim("x").kind == "mine" and s.known(["x"]) == set()


def test_a_token_the_store_missed_is_published_later_and_a_taker_polls_it(tmp_path: Path, pg_url: str) -> None:
    from tagger.ledger.store import Job, JobState, Ledger
    from tagger.pipeline.sharing import POLL, SEND, Sharing
    from tagger.shared.migrations import apply
    from tagger.shared.open import connect

    with connect(pg_url) as c:
        apply(c)
    one = _store(pg_url, "one", lease=0.5)
    taker = None
    try:
        with Ledger(str(tmp_path / "one.sqlite"), locale="en-US") as ledger:
            ledger.files.add_urls([("https://example.com/a.jpg", "digest-a")], "e")
            job_id = ledger.query("SELECT id FROM jobs")[0][0]
            job = Job(job_id, "digest-a", JobState.QUEUED, None, None, 0, 0, None)
            sharing = Sharing(one, ledger, "e")
            assert sharing.claim(job).what == SEND and sharing.before_post(job)
            ledger.begin_submit(job_id)
            # The store goes away between the POST and its answer: the server ends this machine's sessions.
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'tagger' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                )
            ledger.record_token(job_id, "tok-missed", None)
            sharing.token(job, "tok-missed")  # StoreDown: not recorded there
            assert sharing.missed
            with psycopg.connect(pg_url) as c:
                assert c.execute("SELECT token FROM tagger_contents").fetchone() == (None,)
            # The end of the run (or the start of the next) publishes it, once the store answers again (it is
            # tried at most once a second, and the lease renewer may be the one reconnecting).
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert sharing.publish_tokens() == 1
                    break
                except StoreDown:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
            assert sharing.publish_tokens() == 0  # once
        one._closing.set()  # the machine dies: its claim lapses
        one._renewer.join()
        time.sleep(0.8)
        taker = _store(pg_url, "taker")
        got = taker.look(["digest-a"])["digest-a"]
        assert (got.kind, got.token, got.lost) == ("mine", "tok-missed", False)  # polled, not paid for again
        assert Sharing(taker, Ledger(":memory:", locale="en-US"), "e")._decide(job, got).what == POLL
    finally:
        one.close()
        if taker is not None:
            taker.close()


def test_a_dry_run_counts_content_and_similar_photos_claimed_or_captioned_elsewhere_as_free(
    tmp_path: Path, pg_url: str
) -> None:
    from tagger.ledger.keys import normal_endpoint
    from tagger.ledger.planning import HASH_SCHEME
    from tagger.prepare.hashing import content_hash
    from tagger.shared.open import connect
    from tagger.shared.store import PgStore

    one, two = tmp_path / "one", tmp_path / "two"
    _tree(one, range(3))  # captioned by machine one
    # 0-2 byte-equal copies and resized copies of machine one's, 3 claimed by a machine still sending it, 4-5 new.
    _tree(two, range(6), copied=range(3), resized=range(3))
    with Emulator(latency=(0.05, 0.1), seed=4) as emu:
        first = run(_config(tmp_path, "one", emu, pg_url), [str(one)])
        assert first.exit_code == 0 and first.tally.submitted == 3
        busy = PgStore(
            pg_url,
            connect(pg_url),
            owner="busy",
            machine="busy",
            endpoint=normal_endpoint(emu.url),
            locale="en-US",
            scheme=HASH_SCHEME,
        )
        try:
            assert busy.claim(content_hash(str(two / "IMG_0003.jpg"))).kind == "mine"
            before = emu.counters()["requests"]
            plan = dry_run(_config(tmp_path, "two", emu, pg_url), [str(two)])
            alone = dry_run(_config(tmp_path, "alone", emu, ""), [str(two)])
            assert emu.counters()["requests"] == before  # a dry run sends nothing
        finally:
            busy.close()
    assert (plan.exit_code, plan.shared_free, plan.plan.similar, plan.plan.credits) == (0, 7, 0, 2)
    # Without the store: every picture costs one, but a resized copy shares its original's caption.
    assert (alone.shared_free, alone.plan.similar, alone.plan.credits) == (0, 3, 6)
    assert not (tmp_path / "two.sqlite").exists()  # a dry run leaves no ledger behind


def test_a_run_reports_only_the_files_that_changed_and_withdraws_those_gone(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    one = tmp_path / "one"
    _tree(one, range(4))

    def reported(emu: Emulator) -> str:
        caplog.clear()
        with caplog.at_level("INFO", logger="tagger.pipeline.sharing"):
            assert run(_config(tmp_path, "one", emu, pg_url), [str(one)]).exit_code == 0
        return [r.getMessage() for r in caplog.records if "files reported" in r.getMessage()][-1]

    def rows() -> dict[str, tuple]:
        with psycopg.connect(pg_url) as c:
            got = c.execute("SELECT path, status, caption, reported_at FROM tagger_files").fetchall()
        return {Path(r[0]).name: r[1:] for r in got}

    with Emulator(latency=(0.05, 0.1), seed=5) as emu:
        assert reported(emu).endswith("4 changed, 0 withdrawn")
        first = rows()
        assert sorted(first) == [f"IMG_{i:04d}.jpg" for i in range(4)]
        assert all(status == "completed" and caption for status, caption, _ in first.values())
        assert reported(emu).endswith("0 changed, 0 withdrawn")  # a nightly no-op sends no file
        assert rows() == first
        (one / "IMG_0000.jpg").unlink()
        make_photo(one / "IMG_0001.jpg", seed=1)  # new content at the same path: a new caption
        assert reported(emu).endswith("1 changed, 1 withdrawn")
        after = rows()
    assert sorted(after) == [f"IMG_{i:04d}.jpg" for i in range(1, 4)]
    assert after["IMG_0001.jpg"][2] > first["IMG_0001.jpg"][2]  # reported again
    assert after["IMG_0002.jpg"] == first["IMG_0002.jpg"]  # untouched
