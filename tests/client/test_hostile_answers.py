"""A hostile or broken service: every answer is validated before it is believed (whole runs against the emulator).

Each fault is served by the emulator over real sockets; the run must end with the right per-job reason
and exit status, lose no token, and a second run must pay nothing more.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import config_for as pipeline_config_for
from helpers import exiftool_json, make_photo, run_config

from tagger.config import Config
from tagger.emulator import Emulator, Faults

FAST = {"first_poll_delay": 0.05, "poll_interval": 0.05, "max_poll_interval": 0.1, "retry_budget": 5.0}
N = 3


def config_for(emu: Emulator, tmp_path: Path, **extra) -> Config:
    values = {"job_deadline": 1.0, "stop_after_failures": 1000}
    values.update(extra)
    return pipeline_config_for(emu, tmp_path, fast=FAST, **values)


def tree(tmp_path: Path, n: int = N) -> Path:
    root = tmp_path / "photos"
    for i in range(n):
        make_photo(root / f"IMG_{i:04d}.jpg", seed=900 + i, size=(200, 150))
    return root


def jobs(config: Config) -> list[tuple]:
    con = sqlite3.connect(config.ledger_path)
    try:
        return [tuple(r) for r in con.execute("SELECT state, token, caption, reason FROM jobs ORDER BY id")]
    finally:
        con.close()


def twice(emu: Emulator, config: Config, photos: Path):
    """Two runs over the same folder; returns both results and the submissions the second one paid."""
    first = run_config(config, [photos])
    paid = emu.counters()["submissions"]
    second = run_config(config, [photos])
    return first, second, emu.counters()["submissions"] - paid


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"name": ["a", "cat"]}, "name"),
        ({"name": {"text": "a cat"}}, "name"),
        ({"status": ["completed"]}, "status"),
        ({"status": {"is": "completed"}}, "status"),
        ({"reason": ["blurry"]}, "reason"),
        ({"flags": "adult"}, "flags"),
        ({"categories": [{"x": 1}]}, "categories"),
    ],
    ids=["name-list", "name-object", "status-list", "status-object", "reason-list", "flags-text", "categories-objects"],
)
@pytest.mark.slow
def test_a_final_answer_of_the_wrong_type_fails_its_job_with_the_reason_and_never_crashes(tmp_path, fields, problem):
    photos = tree(tmp_path)
    with Emulator(latency=(0.02, 0.05), faults=Faults(final_fields=fields), seed=1) as emu:
        config = config_for(emu, tmp_path)
        first, second, paid_again = twice(emu, config, photos)
        c = emu.counters()
    assert first.exit_code == 1, first.stopped
    assert first.counts["failed"] == N and first.counts["completed"] == 0
    (reason,) = first.counts["reasons"]
    assert reason.startswith("failed: the service's answer was invalid") and problem in reason, reason
    assert first.tally.invalid_answers >= N
    # Every token was kept (polled until the job's deadline), none was paid twice, and nothing is sent again.
    assert all(state == "failed" and token for state, token, _, _ in jobs(config))
    assert c["submissions"] == N and c["duplicates"] == 0
    # Known to the ledger now: a later run names it ("1 known failure") and goes green, paying nothing.
    assert second.exit_code == 0 and paid_again == 0 and second.known_failures


def test_a_caption_xml_and_csv_cannot_carry_is_cleaned_and_written(tmp_path):
    photos = tree(tmp_path, 1)
    hostile = "a cat\ud800 on a\x00 mat\x1b[31m\ufffe\uffff\x85 with\tnew\nlines " + "x" * 5000
    with Emulator(latency=(0.02, 0.05), faults=Faults(final_fields={"name": hostile}), seed=2) as emu:
        config = config_for(emu, tmp_path)
        first, second, paid_again = twice(emu, config, photos)
    assert first.exit_code == 0, first.stopped
    assert first.counts["completed"] == 1
    ((state, token, caption, _),) = jobs(config)
    assert state == "completed" and token
    assert caption.startswith("a cat\ufffd on a mat[31m with new lines xxx")
    assert len(caption) <= 1000
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\ufffe\uffff" for ch in caption)
    (meta,) = exiftool_json(photos / "IMG_0000.jpg.xmp")
    assert meta["XMP-dc:Description"] == caption
    assert second.exit_code == 0 and paid_again == 0


@pytest.mark.parametrize("header", ["inf", "-inf", "nan", "1e400", "99999999999999999999999", "12abc", " "])
def test_a_credit_balance_that_is_no_count_is_ignored_and_no_token_is_lost(tmp_path, header):
    photos = tree(tmp_path)
    with Emulator(latency=(0.02, 0.05), faults=Faults(credit_header=header), seed=3) as emu:
        config = config_for(emu, tmp_path)
        first, second, paid_again = twice(emu, config, photos)
        c = emu.counters()
    assert first.exit_code == 0, first.stopped
    assert first.counts["completed"] == N and first.credit_balance is None
    assert c["submissions"] == N and c["duplicates"] == 0 and paid_again == 0


def test_a_token_given_to_two_uploads_is_refused_and_counted_and_nothing_is_paid_again(tmp_path):
    photos = tree(tmp_path)
    with Emulator(latency=(0.02, 0.05), faults=Faults(repeat_tokens=1), seed=4) as emu:
        config = config_for(emu, tmp_path, max_in_flight=1)
        first, second, paid_again = twice(emu, config, photos)
        c = emu.counters()
    assert c["repeated_tokens"] == 1 and c["submissions"] == N
    assert first.exit_code == 1, first.stopped
    assert first.counts["completed"] == N - 1 and first.counts["failed"] == 1
    assert first.tally.invalid_answers == 1
    (reason,) = [r for r in first.counts["reasons"] if r.startswith("failed:")]
    assert "already holds" in reason, reason
    rows = jobs(config)
    tokens = [t for _, t, _, _ in rows if t]
    assert len(tokens) == len(set(tokens)) == N - 1  # the refused job holds no token; the other keeps its own
    # Known to the ledger now: a later run names it ("1 known failure") and goes green, paying nothing.
    assert second.exit_code == 0 and paid_again == 0 and second.known_failures


@pytest.mark.parametrize("token", ["../../../admin", "a/b", "x" * 300, "", "tok en", "%2e%2e", "..", 42])
def test_a_token_of_the_wrong_shape_is_never_put_into_a_url(tmp_path, token):
    photos = tree(tmp_path)
    with Emulator(latency=(0.02, 0.05), faults=Faults(submit_fields={"token": token}), seed=5) as emu:
        config = config_for(emu, tmp_path)
        first, second, paid_again = twice(emu, config, photos)
        c = emu.counters()
    assert c["polls"] == 0 and c["unrouted"] == 0 and c["requests"] == c["submissions"] == N
    assert first.exit_code == 1 and first.counts["failed"] == N
    (reason,) = first.counts["reasons"]
    assert "token" in reason, reason
    # Known to the ledger now: a later run names it ("1 known failure") and goes green, paying nothing.
    assert second.exit_code == 0 and paid_again == 0 and second.known_failures


def test_a_submit_answer_with_a_broken_status_keeps_its_token(tmp_path):
    photos = tree(tmp_path)
    with Emulator(latency=(0.02, 0.05), faults=Faults(submit_fields={"status": {"a": ["b"]}}), seed=6) as emu:
        config = config_for(emu, tmp_path)
        first, second, paid_again = twice(emu, config, photos)
        c = emu.counters()
    assert first.exit_code == 0, first.stopped
    assert first.counts["completed"] == N
    assert c["submissions"] == N and paid_again == 0


def test_a_redirect_to_another_host_sends_nothing_there_and_says_where_it_pointed(tmp_path):
    photos = tree(tmp_path)
    with Emulator(latency=(0.02, 0.05), seed=7) as elsewhere:
        with Emulator(latency=(0.02, 0.05), faults=Faults(redirect_to=f"http://{elsewhere.address}"), seed=8) as emu:
            config = config_for(emu, tmp_path)
            first = run_config(config, [photos])
            assert emu.counters()["redirected"] >= 1
            emu.set_faults(Faults())
            second = run_config(config, [photos])
            c = emu.counters()
        there = elsewhere.counters()
    assert there["requests"] == 0
    assert first.exit_code == 3 and first.counts["pending"] == N and first.counts["failed"] == 0
    assert f"http://{elsewhere.address}/v1/images" in first.stopped and "redirect" in first.stopped
    assert second.exit_code == 0 and second.counts["completed"] == N
    assert c["submissions"] == N and c["duplicates"] == 0
