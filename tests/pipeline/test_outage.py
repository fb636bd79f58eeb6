"""Transient trouble never leaves a permanent failure: an outage that outlasts the retries, then a plain re-run."""

from __future__ import annotations

import json
import os
import socket
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

pytestmark = pytest.mark.slow  # scenarios: outages outlasting the retries, CLI processes

FAST = dict(first_poll_delay=0.1, poll_interval=0.05, max_poll_interval=0.2)
#: Retries give up fast, so the outage outlasts them.
SHORT_BUDGET = dict(retry_attempts=3, retry_budget=3.0, stop_after_failures=2)


def config_for(emu: Emulator, tmp_path: Path, **extra) -> Config:
    return pipeline_config_for(emu, tmp_path, fast=FAST, **extra)


def jobs(config: Config) -> list[tuple]:
    con = sqlite3.connect(config.ledger_path)
    try:
        return con.execute("SELECT state, last_error, possible_duplicates FROM jobs ORDER BY id").fetchall()
    finally:
        con.close()


OUTAGES = {
    # A 500 on every request: an upload answered 500 may have been received, so its resend counts as a possible duplicate.
    "500": Faults(outage_requests=10**6, outage_status=500),
    # A 503 with Retry-After: the service declined; retried freely, nothing counted.
    "503-retry-after": Faults(outage_requests=10**6, outage_status=503, outage_retry_after=0.2),
    "429": Faults(rate_limit_rate=1.0, retry_after=0.2),
    # Connections dropped after the request was read: maybe received.
    "dropped": Faults(drop_rate=1.0),
}


@pytest.mark.parametrize("kind", list(OUTAGES))
def test_an_outage_that_outlasts_the_retries_fails_nothing_and_a_plain_rerun_finishes(photos, tmp_path, kind):
    with Emulator(latency=(0.05, 0.1), faults=OUTAGES[kind], seed=5) as emu:
        config = config_for(emu, tmp_path, **SHORT_BUDGET)
        first = run_with(config, [photos])
        assert first.exit_code == 3, first.stopped
        assert first.counts["failed"] == 0 and first.counts["pending"] == 6
        assert first.stopped and "unreachable" in first.stopped
        states = jobs(config)
        assert {s for s, _, _ in states} == {"queued"}
        # The jobs that were tried keep the reason for `status` (the run stopped before trying the rest).
        assert [e for _, e, _ in states if e] and all(
            "HTTP" in e or "connection" in e or "rate" in e for _, e, _ in states if e
        )
        assert emu.counters()["submissions"] == 0  # the outage created nothing
        emu.set_faults(Faults())  # the outage ends
        second = run_with(config, [photos])
        counters = emu.counters()
    assert second.exit_code == 0, second.stopped
    assert second.counts["completed"] == 6 and second.counts["failed"] == 0
    assert [s for s, _, _ in jobs(config)] == ["completed"] * 6
    counted = sum(d for _, _, d in jobs(config))
    assert counters["submissions"] == 6 + counters["duplicates"]
    assert counters["duplicates"] == 0 <= counted
    if kind in ("503-retry-after", "429"):
        assert counted == 0  # surely not received: nothing may have been charged twice
    else:
        assert counted > 0  # each resend after a maybe-received failure is counted


def test_connection_refused_is_retried_freely_and_never_counted(photos, tmp_path):
    # A port bound but not listening: every connection is refused before anything is sent. Held until the
    # emulator listens on it (both reuse the address), so no other process (another test run on the same
    # machine) can take the port in between, as it could a port merely freed.
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    try:
        config = Config(
            **FAST,
            **SHORT_BUDGET,
            api_key="emulator-key",
            endpoint=f"http://127.0.0.1:{port}/v1",
            ledger=str(tmp_path / "ledger.sqlite"),
        )
        first = run_with(config, [photos])
        assert first.exit_code == 3 and first.counts["failed"] == 0 and first.counts["pending"] == 6
        with Emulator(port=port, latency=(0.05, 0.1)) as emu:
            held.close()
            second = run_with(config, [photos])
            counters = emu.counters()
    finally:
        held.close()
    assert second.exit_code == 0 and second.counts["completed"] == 6
    assert counters["submissions"] == 6
    assert sum(d for _, _, d in jobs(config)) == 0


def test_the_command_line_exits_3_then_0_and_status_says_why(photos, tmp_path):
    ledger = str(tmp_path / "ledger.sqlite")
    cfg = tmp_path / "fast.toml"
    cfg.write_text(
        "[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n"
        "retry_attempts = 2\nretry_budget = 2.0\nstop_after_failures = 2\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}

    def tagger(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-P", "-m", "tagger", *args], capture_output=True, text=True, env=env, timeout=120
        )

    with Emulator(latency=(0.05, 0.1), faults=Faults(outage_requests=10**6, outage_status=502)) as emu:
        env.update(CLOUDSIGHT_API_KEY=emu.key, CLOUDSIGHT_ENDPOINT=emu.url)
        first = tagger("--config", str(cfg), "run", str(photos), "--ledger", ledger)
        assert first.returncode == 3, first.stderr
        status = json.loads(tagger("status", "--ledger", ledger, "--json").stdout)
        assert (status["failed"], status["pending"]) == (0, 6)
        assert any(reason.startswith("pending: ") and "HTTP 502" in reason for reason in status["reasons"])
        human = tagger("status", "--ledger", ledger).stdout
        assert "HTTP 502" in human and "0 failed" in human
        emu.set_faults(Faults())
        second = tagger("--config", str(cfg), "run", str(photos), "--ledger", ledger)
        assert second.returncode == 0, second.stderr
        counters = emu.counters()
    status = json.loads(tagger("status", "--ledger", ledger, "--json").stdout)
    assert (status["completed"], status["failed"], status["pending"]) == (6, 0, 0)
    assert counters["submissions"] == 6 and counters["duplicates"] == 0
    assert status["possible_duplicates"] >= counters["duplicates"]


def test_an_outage_while_polling_keeps_every_token(tmp_path):
    photos = tmp_path / "photos"
    for i in range(4):
        make_photo(photos / f"IMG_{i}.jpg", seed=40 + i, size=(320, 240))
    with Emulator(latency=(0.3, 0.4)) as emu:
        config = config_for(emu, tmp_path, **SHORT_BUDGET, first_poll_delay=0.5)
        # Every upload is answered, then every request (the polls) hits the outage.
        emu.set_faults(Faults())
        import threading

        def outage_after_submits() -> None:
            while emu.counters()["submissions"] < 4:
                threading.Event().wait(0.01)
            emu.set_faults(Faults(outage_requests=10**6, outage_status=500))

        watcher = threading.Thread(target=outage_after_submits, daemon=True)
        watcher.start()
        first = run_with(config, [photos])
        watcher.join(timeout=10)
        assert first.exit_code == 3 and first.counts["failed"] == 0
        assert {s for s, _, _ in jobs(config)} == {"polling"}
        emu.set_faults(Faults())
        second = run_with(config, [photos])
        counters = emu.counters()
    assert second.exit_code == 0 and second.counts["completed"] == 4
    assert counters["submissions"] == 4 and counters["duplicates"] == 0
    assert sum(d for _, _, d in jobs(config)) == 0  # polls are free: nothing counted
