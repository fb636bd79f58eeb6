"""Answers lost after the service accepted an upload: resent at most once per loss, each counted, or held."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import config_for as pipeline_config_for
from helpers import make_photo
from helpers import run_config as run_with

from tagger.config import Config
from tagger.emulator import Emulator, Faults
from tagger.pipeline.dispatch import max_posts_in_flight

# A short read timeout keeps the "timeout" kind fast; the emulator holds such an answer well past it.
FAST = dict(first_poll_delay=0.1, poll_interval=0.05, max_poll_interval=0.2, request_timeout=2.0)
HOLD = 4.0


def config_for(emu: Emulator, tmp_path: Path, **extra) -> Config:
    return pipeline_config_for(emu, tmp_path, fast=FAST, **extra)


def ledger_duplicates(config: Config) -> int:
    con = sqlite3.connect(config.ledger_path)
    try:
        return con.execute("SELECT sum(possible_duplicates) FROM jobs").fetchone()[0]
    finally:
        con.close()


def tree(tmp_path: Path, n: int, size: tuple[int, int] = (320, 240)) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        make_photo(root / f"IMG_{i:04d}.jpg", seed=500 + i, size=size)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["timeout", "reset", "500", "502", "504"])
def test_one_lost_answer_is_resent_once_counted_and_the_run_finishes(tmp_path, kind):
    photos = tree(tmp_path, 4)
    with Emulator(
        latency=(0.05, 0.1), faults=Faults(lost_answers=1, lost_answer_kind=kind, lost_answer_seconds=HOLD)
    ) as emu:
        config = config_for(emu, tmp_path)
        result = run_with(config, [photos])
        c = emu.counters()
    assert result.exit_code == 0, result.stopped
    assert result.counts["completed"] == 4 and result.counts["failed"] == 0
    assert c["lost_answers"] == 1 and c["lost_answers_by_kind"][kind] == 1
    # injected lost answers == counted in the ledger == the emulator's duplicate submissions == said in the run's tally
    assert ledger_duplicates(config) == c["duplicates"] == result.tally.possible_duplicates == 1
    assert c["submissions"] == 4 + 1


@pytest.mark.slow
def test_lost_answers_of_every_kind_are_counted_exactly(tmp_path):
    photos = tree(tmp_path, 10)
    injected = 10
    faults = Faults(lost_answers=injected, lost_answer_kind="cycle", lost_answer_seconds=HOLD)
    runs = []
    with Emulator(latency=(0.05, 0.1), faults=faults, seed=9) as emu:
        config = config_for(emu, tmp_path, max_in_flight=8)
        # A resend that loses its answer too goes back to the queue: the next plain run sends it.
        for _ in range(8):
            runs.append(run_with(config, [photos]))
            assert runs[-1].counts["failed"] == 0
            if runs[-1].exit_code == 0:
                break
        c = emu.counters()
    assert runs[-1].exit_code == 0 and runs[-1].counts["completed"] == 10
    assert c["lost_answers"] == injected
    assert all(c["lost_answers_by_kind"][k] == 2 for k in ("timeout", "reset", "500", "502", "504"))
    assert ledger_duplicates(config) == c["duplicates"] == sum(r.tally.possible_duplicates for r in runs) == injected
    assert c["submissions"] == 10 + injected


@pytest.mark.slow
def test_each_lost_answer_is_resent_at_most_once_in_a_run(tmp_path):
    photos = tree(tmp_path, 1)
    with Emulator(latency=(0.05, 0.1), faults=Faults(lost_answers=3, lost_answer_kind="500")) as emu:
        config = config_for(emu, tmp_path)
        first = run_with(config, [photos])
        assert first.exit_code == 3 and first.counts["failed"] == 0 and first.counts["pending"] == 1
        assert emu.counters()["submissions"] == 2  # the upload, and one resend; not a loop of paid retries
        # The next plain run sends it again: lost once more (the third), resent once, answered.
        second = run_with(config, [photos])
        c = emu.counters()
    assert second.exit_code == 0 and second.counts["completed"] == 1
    assert second.tally.possible_duplicates == 2 and first.tally.possible_duplicates == 1
    assert c["submissions"] == 4 and c["lost_answers"] == 3
    assert ledger_duplicates(config) == c["duplicates"] == 3


def tagger(*args: str, env: dict) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-P", "-m", "tagger", *args], capture_output=True, text=True, env=full, timeout=120
    )


@pytest.mark.slow
def test_resend_ambiguous_false_holds_them_for_retry_ambiguous(tmp_path):
    photos = tree(tmp_path, 5)
    ledger = str(tmp_path / "ledger.sqlite")
    cfg = tmp_path / "hold.toml"
    cfg.write_text(
        "[service]\nrequest_timeout = 2.0\n"
        "[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\nresend_ambiguous = false\n"
    )
    with Emulator(
        latency=(0.05, 0.1), faults=Faults(lost_answers=2, lost_answer_kind="cycle", lost_answer_seconds=HOLD)
    ) as emu:
        env = {"CLOUDSIGHT_API_KEY": emu.key, "CLOUDSIGHT_ENDPOINT": emu.url}
        first = tagger("--config", str(cfg), "run", str(photos), "--ledger", ledger, env=env)
        assert first.returncode == 3, first.stderr
        assert "2 held" in first.stdout and "retry --ambiguous" in first.stdout
        assert emu.counters()["submissions"] == 5  # both lost uploads were charged once, and not resent
        status = json.loads(tagger("status", "--ledger", ledger, "--json", env=env).stdout)
        assert (status["completed"], status["pending"], status["held"], status["failed"]) == (3, 2, 2, 0)
        assert status["possible_duplicates"] == 0
        assert sum(n for reason, n in status["reasons"].items() if reason.startswith("held: ")) == 2
        again = tagger("--config", str(cfg), "run", str(photos), "--ledger", ledger, env=env)
        assert again.returncode == 3 and emu.counters()["submissions"] == 5  # a plain run leaves held jobs alone
        retry = tagger("retry", "--ambiguous", "--ledger", ledger, env=env)
        assert retry.returncode == 0 and "2 jobs queued again" in retry.stdout
        last = tagger("--config", str(cfg), "run", str(photos), "--ledger", ledger, env=env)
        assert last.returncode == 0, last.stderr
        assert "2 uploads may have been charged twice" in last.stdout
        c = emu.counters()
    status = json.loads(tagger("status", "--ledger", ledger, "--json", env=env).stdout)
    assert (status["completed"], status["held"]) == (5, 0)
    assert status["possible_duplicates"] == c["duplicates"] == c["lost_answers"] == 2
    assert "possible duplicates: 2" in tagger("status", "--ledger", ledger, env=env).stdout


def test_a_crash_in_mid_upload_counts_the_resend(tmp_path):
    """A job the start-up sweep finds cut off mid-POST may have been charged: its resend is counted."""
    photos = tree(tmp_path, 2)
    with Emulator(latency=(0.05, 0.1)) as emu:
        config = config_for(emu, tmp_path)
        assert run_with(config, [photos]).exit_code == 0
        con = sqlite3.connect(config.ledger_path)
        # As a SIGKILL between the POST and its answer leaves it: submitting, no token (the service did get it).
        con.execute("UPDATE jobs SET state = 'submitting', token = NULL WHERE id = (SELECT min(id) FROM jobs)")
        con.commit()
        con.close()
        result = run_with(config, [photos])
        c = emu.counters()
    assert result.exit_code == 0 and result.swept == 1
    assert result.tally.possible_duplicates == 1 == ledger_duplicates(config) == c["duplicates"]


@pytest.mark.slow
@pytest.mark.parametrize("max_in_flight", [8, 32])
def test_posts_in_flight_never_exceed_the_stated_bound(tmp_path, max_in_flight):
    """What a crash can cost twice at most: the POSTs in the air at one moment (README)."""
    bound = max_posts_in_flight(max_in_flight)
    photos = tree(tmp_path, bound + 12, size=(160, 120))
    with Emulator(latency=(0.05, 0.1), faults=Faults(submit_delay=2.0)) as emu:
        config = config_for(emu, tmp_path, max_in_flight=max_in_flight, workers=2, request_timeout=30.0)
        assert run_with(config, [photos]).exit_code == 0
        c = emu.counters()
    assert c["max_concurrent_submissions"] == bound
    assert bound == {8: 4, 32: 16}[max_in_flight]


def test_a_resend_cut_off_by_a_second_crash_is_counted_too(tmp_path):
    photos = tree(tmp_path, 1)
    with Emulator(latency=(0.05, 0.1)) as emu:
        config = config_for(emu, tmp_path)
        assert run_with(config, [photos]).exit_code == 0
        from tagger.ledger.store import Ledger

        for _ in range(2):  # two crashes in a row, each between a POST the service got and its answer
            con = sqlite3.connect(config.ledger_path)
            con.execute("UPDATE jobs SET state = 'submitting', token = NULL")
            con.commit()
            con.close()
            with Ledger(config.ledger_path) as ledger:
                assert ledger.sweep() == 1
        result = run_with(config, [photos])
    # Three POSTs in all may have been charged (the original, the cut-off resend, the final one): two possible duplicates.
    assert result.exit_code == 0
    assert ledger_duplicates(config) == 2 and result.tally.possible_duplicates == 1


@pytest.mark.slow
def test_a_released_job_is_held_again_only_by_a_new_lost_answer(tmp_path):
    photos = tree(tmp_path, 1)
    with Emulator(latency=(0.05, 0.1), faults=Faults(lost_answers=1, lost_answer_kind="reset")) as emu:
        config = config_for(emu, tmp_path, resend_ambiguous=False, retry_attempts=2, retry_budget=2.0)
        held = run_with(config, [photos])
        assert held.exit_code == 3 and held.tally.held == 1 and held.counts["held"] == 1
        from tagger.ledger.store import Ledger

        with Ledger(config.ledger_path) as ledger:
            assert ledger.retry(emu.url, failed=False, ambiguous=True) == 1
        emu.set_faults(Faults(rate_limit_rate=1.0, retry_after=0.1))  # surely not received: no reason to hold it again
        refused = run_with(config, [photos])
        assert refused.exit_code == 3 and refused.tally.held == 0 and refused.counts["held"] == 0
        emu.set_faults(Faults())
        done = run_with(config, [photos])
        c = emu.counters()
    assert done.exit_code == 0 and done.counts["completed"] == 1
    assert ledger_duplicates(config) == c["duplicates"] == c["lost_answers"] == 1
