"""Small things a user meets: where retry's failures are and what they cost; plain English."""

from __future__ import annotations

import pytest
from helpers import fast_config, make_photo, tagger

from tagger.emulator import Emulator


@pytest.mark.slow
def test_retry_says_where_its_failures_are_and_what_they_cost(tmp_path):
    photos = tmp_path / "photos"
    make_photo(photos / "ok.jpg", seed=1)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (photos / name).write_text(f"not a picture: {name}\n")
    ledger = str(tmp_path / "l.sqlite")
    cfg = str(fast_config(tmp_path))
    first = tagger("--config", cfg, "run", str(photos), "--emulator", "--ledger", ledger)
    assert first.returncode == 1, first.stdout + first.stderr
    plain = tagger("retry", "--failed", "--ledger", ledger)
    assert plain.returncode == 0
    assert "0 jobs queued again" in plain.stdout
    assert "3 failed jobs of another endpoint (emulator) left as they are" in plain.stdout
    assert "tagger retry --failed --emulator" in plain.stdout
    there = tagger("retry", "--failed", "--emulator", "--ledger", ledger)
    assert "3 jobs queued again" in there.stdout and "no real credit" in there.stdout
    assert "a credit each" not in there.stdout
    with Emulator(latency=(0.05, 0.1)) as emu:
        env = {"CLOUDSIGHT_API_KEY": emu.key}
        real = tagger("--config", cfg, "run", str(photos), "--endpoint", emu.url, "--ledger", ledger, env=env)
        assert real.returncode == 1
        again = tagger("retry", "--failed", "--endpoint", emu.url, "--ledger", ledger)
        assert "3 jobs queued again" in again.stdout
        assert "failed before they were sent" in again.stdout and "a credit each" not in again.stdout
        assert emu.counters()["submissions"] == 1


@pytest.mark.slow
def test_counts_are_in_plain_english(photos, tmp_path):
    ledger = str(tmp_path / "l.sqlite")
    one = photos / "IMG_0000.JPG"
    out = tagger("--config", str(fast_config(tmp_path)), "run", str(one), "--emulator", "--ledger", ledger)
    assert out.returncode == 0, out.stderr
    exported = tagger("export", "--csv", str(tmp_path / "c.csv"), "--ledger", ledger)
    assert exported.stdout.strip() == f"wrote 1 row to {tmp_path / 'c.csv'}"
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nmax_in_flight = 'lots'\n[service]\nrequest_timeout = 'soon'\n")
    refused = tagger("--config", str(bad), "status", "--ledger", ledger)
    assert refused.returncode == 2
    assert "max_in_flight must be an integer" in refused.stderr and "request_timeout must be a number" in refused.stderr
