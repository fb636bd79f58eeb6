"""Every job ends: the job_deadline, a refused repost, and ``tagger retry --timeouts`` reposting for free."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import FakeClock, make_photo

from tagger.client import cloudsight as cs
from tagger.config import Config
from tagger.emulator import Emulator, Faults
from tagger.ledger.store import JobState, Ledger
from tagger.pipeline.dispatch import DEADLINE_REASON, REPOST_REFUSED, Dispatcher, DispatchOptions
from tagger.pipeline.plan import plan
from tagger.pipeline.runner import make_api, run
from tagger.prepare.normalise import PrepareOptions, Preparer

JOBS = 4
DEADLINE = 60.0
INTERVAL = 1.0
# The first poll comes one interval after the POST and the last one falls on the deadline.
MAX_POLLS = int(DEADLINE / INTERVAL) + 1


def _queue(tmp_path: Path, endpoint: str, *, clock=time.time) -> Ledger:
    for i in range(JOBS):
        make_photo(tmp_path / "photos" / f"IMG_{i}.jpg", seed=40 + i, size=(160, 120))
    ledger = Ledger(str(tmp_path / "ledger.sqlite"), clock=clock)
    plan(ledger, [str(tmp_path / "photos")], endpoint)
    return ledger


def _dispatcher(emu: Emulator, ledger: Ledger, *, clock=None, stop=None, **options) -> Dispatcher:
    api = cs.API(cs.SimpleAuth(emu.key), base_url=emu.url)
    values = dict(first_poll_delay=INTERVAL, poll_interval=INTERVAL, max_poll_interval=5.0, job_deadline=DEADLINE)
    values.update(options)
    opts = DispatchOptions(endpoint=emu.url, params={"image_request[locale]": "en-US"}, **values)
    if clock is None:
        return Dispatcher(api, ledger, Preparer(PrepareOptions()), opts, stop=stop)
    return Dispatcher(api, ledger, Preparer(PrepareOptions()), opts, clock=clock, sleep=clock.sleep, stop=stop)


def _jobs(ledger: Ledger) -> list[tuple]:
    return [tuple(r) for r in ledger.query("SELECT state, reason FROM jobs ORDER BY id")]


@pytest.mark.parametrize(
    "answer",
    ["not completed", "in progress", "thinking", ""],
    ids=["not-completed", "in-progress", "unknown-status", "no-status"],
)
def test_a_job_the_service_never_finishes_times_out_at_its_deadline(tmp_path, answer):
    clock = FakeClock()
    with Emulator(latency=(0.05, 0.1), faults=Faults(stuck_rate=1.0, stuck_status=answer), seed=1) as emu:
        ledger = _queue(tmp_path, emu.url)
        tally = _dispatcher(emu, ledger, clock=clock).run()
        counters = emu.counters()
    assert tally.timeout == JOBS and tally.completed == 0 and tally.stopped is None
    assert _jobs(ledger) == [(JobState.TIMEOUT.value, DEADLINE_REASON)] * JOBS
    # Ended at the deadline, not a poll gap later, and never polled faster than the interval.
    assert DEADLINE <= clock.now <= DEADLINE + INTERVAL
    polls = counters["polls_by_token"]
    assert len(polls) == JOBS and all(2 <= n <= MAX_POLLS for n in polls.values()), polls
    assert counters["submissions"] == JOBS and counters["reposts"] == 0
    ledger.close()


def test_the_deadline_runs_from_the_submission_across_runs(tmp_path):
    wall = FakeClock()
    wall.now = 1_000_000.0
    stop = threading.Event()
    with Emulator(latency=(0.05, 0.1), faults=Faults(stuck_rate=1.0), seed=2) as emu:
        ledger = _queue(tmp_path, emu.url, clock=wall)
        first = _dispatcher(
            emu,
            ledger,
            stop=stop,
            first_poll_delay=0.05,
            poll_interval=0.05,
            max_poll_interval=0.1,
            job_deadline=1800.0,
        )
        outcome = {}
        thread = threading.Thread(target=lambda: outcome.setdefault("tally", first.run()))
        thread.start()
        deadline = time.monotonic() + 30
        while emu.counters()["polls"] < 2 * JOBS and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()  # a stop leaves the tokens polling, for the next run
        thread.join(30)
        assert outcome["tally"].stopped == "interrupted"
        assert {r[0] for r in _jobs(ledger)} == {JobState.POLLING.value}
        emu.reset_counters()
        wall.now += 1801.0  # the next run comes after the deadline of every job
        tally = _dispatcher(emu, ledger, job_deadline=1800.0).run()
        counters = emu.counters()
    assert tally.timeout == JOBS
    assert _jobs(ledger) == [(JobState.TIMEOUT.value, DEADLINE_REASON)] * JOBS
    assert sorted(counters["polls_by_token"].values()) == [1] * JOBS  # one poll each, then it ends
    assert counters["submissions"] == 0
    ledger.close()


@pytest.mark.slow
@pytest.mark.parametrize("code", [400, 404, 409, 410])
def test_a_repost_refused_with_any_4xx_ends_the_job_as_timeout(tmp_path, code):
    with Emulator(latency=(0.05, 0.1), faults=Faults(timeout_rate=1.0, repost_status=code), seed=3) as emu:
        config = Config(
            api_key=emu.key,
            endpoint=emu.url,
            ledger=str(tmp_path / "ledger.sqlite"),
            first_poll_delay=0.1,
            poll_interval=0.05,
            max_poll_interval=0.2,
            timeout_reposts=2,
        )
        ledger = _queue(tmp_path, emu.url)
        ledger.close()
        with make_api(config) as api:
            result = run(config, [str(tmp_path / "photos")], api=api)
        counters = emu.counters()
    assert result.exit_code == 0 and result.counts["timeout"] == JOBS
    con = sqlite3.connect(config.ledger_path)
    rows = con.execute("SELECT state, status, reason, reposts FROM jobs").fetchall()
    con.close()
    assert rows == [("timeout", "timeout", REPOST_REFUSED, 0)] * JOBS
    # The poll that found the timeout was followed by exactly one repost request per job, refused: no loop.
    polls = counters["polls_by_token"]
    assert len(polls) == JOBS and max(polls.values()) <= 3
    assert counters["requests"] == counters["submissions"] + counters["polls"] + JOBS
    assert counters["reposts"] == 0 and counters["submissions"] == JOBS


@pytest.mark.slow
def test_an_unsure_skip_whose_repost_is_refused_stays_skipped(tmp_path):
    with Emulator(latency=(0.05, 0.1), faults=Faults(unsure_rate=1.0, repost_status=409), seed=4) as emu:
        config = Config(
            api_key=emu.key,
            endpoint=emu.url,
            ledger=str(tmp_path / "ledger.sqlite"),
            first_poll_delay=0.1,
            poll_interval=0.05,
            max_poll_interval=0.2,
        )
        _queue(tmp_path, emu.url).close()
        with make_api(config) as api:
            result = run(config, [str(tmp_path / "photos")], api=api)
    assert result.exit_code == 0 and result.counts["skipped"] == JOBS
    con = sqlite3.connect(config.ledger_path)
    assert con.execute("SELECT DISTINCT state, reason FROM jobs").fetchall() == [("skipped", "unsure")]
    con.close()


# -- from the command line ------------------------------------------------------


def _tagger(*args: str, emu: Emulator) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    env.update({"CLOUDSIGHT_API_KEY": emu.key, "CLOUDSIGHT_ENDPOINT": emu.url})
    return subprocess.run(
        [sys.executable, "-P", "-m", "tagger", *args], capture_output=True, text=True, env=env, timeout=120
    )


def _config_file(tmp_path: Path, extra: str = "") -> str:
    cfg = tmp_path / "fast.toml"
    cfg.write_text(f"[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n{extra}")
    return str(cfg)


@pytest.mark.slow
def test_a_stuck_job_ends_by_the_deadline_and_retry_polls_it_again_for_free(photos, tmp_path):
    ledger = str(tmp_path / "l.sqlite")
    cfg = _config_file(tmp_path, "job_deadline = 1.0\n")
    with Emulator(latency=(0.05, 0.1), faults=Faults(stuck_rate=1.0)) as emu:
        first = _tagger("--config", cfg, "run", str(photos), "--ledger", ledger, emu=emu)
        assert first.returncode == 0, first.stderr
        assert "timeout 6" in first.stdout
        status = _tagger("status", "--ledger", ledger, emu=emu)
        assert f"6  timeout: {DEADLINE_REASON}" in status.stdout
        polls = emu.counters()["polls_by_token"]
        assert len(polls) == 6 and max(polls.values()) <= int(1.0 / 0.05) + 1
        retry = _tagger("retry", "--timeouts", "--ledger", ledger, emu=emu)
        assert retry.returncode == 0, retry.stderr
        assert (
            "0 reposted" in retry.stdout and "6 still known to the service and polled again (no credit)" in retry.stdout
        )
        assert "0 queued to be sent again" in retry.stdout
        again = _tagger("--config", cfg, "run", str(photos), "--ledger", ledger, emu=emu)
        assert again.returncode == 0, again.stderr
        counters = emu.counters()
    assert "submitted 0" in again.stdout and "timeout 6" in again.stdout
    assert counters["submissions"] == 6 and counters["reposts"] == 0


@pytest.mark.slow
def test_retry_timeouts_reposts_known_tokens_and_sends_only_the_forgotten_ones(photos, tmp_path):
    ledger = str(tmp_path / "l.sqlite")
    cfg = _config_file(tmp_path, "timeout_reposts = 0\n")
    with Emulator(latency=(0.05, 0.1), faults=Faults(timeout_rate=1.0)) as emu:
        first = _tagger("--config", cfg, "run", str(photos), "--ledger", ledger, emu=emu)
        assert first.returncode == 0 and "timeout 6" in first.stdout, first.stderr
        con = sqlite3.connect(ledger)
        tokens = [r[0] for r in con.execute("SELECT token FROM jobs ORDER BY id")]
        con.close()
        assert emu.forget(tokens[0]) and emu.forget(tokens[1])  # the service no longer keeps these two
        emu.set_faults(Faults())
        retry = _tagger("retry", "--timeouts", "--ledger", ledger, emu=emu)
        assert retry.returncode == 0, retry.stderr
        assert (
            "timeouts: 4 reposted under their own token (no credit), 0 still known to the service and polled "
            "again (no credit), 2 queued to be sent again"
        ) in retry.stdout
        assert emu.counters()["reposts"] == 4 and emu.counters()["submissions"] == 6
        again = _tagger("--config", cfg, "run", str(photos), "--ledger", ledger, emu=emu)
        assert again.returncode == 0, again.stderr
        counters = emu.counters()
    con = sqlite3.connect(ledger)
    assert con.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall() == [("completed", 6)]
    kept = con.execute("SELECT count(*) FROM jobs WHERE token IN (?, ?, ?, ?)", tokens[2:]).fetchone()[0]
    con.close()
    assert kept == 4  # the reposted jobs finished under their first token
    # Only the two forgotten images were paid again.
    assert counters["submissions"] == 8 and counters["duplicates"] == 2
    assert len(list(photos.rglob("*.xmp"))) == 6
