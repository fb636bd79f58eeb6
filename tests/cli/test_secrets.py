"""Secrets: a key is checked for what a header cannot carry when it is read, and never shown, logged or stored."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_photo

from tagger import redact
from tagger.client import cloudsight as cs
from tagger.config import load_config
from tagger.emulator import Emulator, Faults
from tagger.errors import UsageError

KEY = "SeCrEtKey4711"
FAST = "[run]\nfirst_poll_delay = 0.05\npoll_interval = 0.05\nmax_poll_interval = 0.1\n"


def tagger(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-P", "-m", "tagger", *args], capture_output=True, text=True, env=full, timeout=120, cwd=cwd
    )


def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    make_photo(root / "IMG_0001.jpg", seed=31, size=(160, 120))
    return root


@pytest.mark.parametrize("pasted", [KEY + "\n", KEY + "\r\n", KEY + "\r", "  " + KEY + " \t\n"])
@pytest.mark.slow
def test_a_key_pasted_with_a_line_break_is_stripped_and_never_shown(tmp_path, pasted):
    cfg = tmp_path / "t.toml"
    cfg.write_text(FAST)
    with Emulator(key=KEY, latency=(0.02, 0.05)) as emu:
        env = {"CLOUDSIGHT_API_KEY": pasted, "CLOUDSIGHT_ENDPOINT": emu.url}
        done = tagger("--config", str(cfg), "run", str(photos(tmp_path)), "--ledger", "l.sqlite", env=env, cwd=tmp_path)
        c = emu.counters()
    assert done.returncode == 0, done.stderr
    assert c["auth_failures"] == 0 and c["submissions"] == 1
    assert KEY not in done.stdout + done.stderr


@pytest.mark.parametrize("key", [KEY[:6] + "\r" + KEY[6:], KEY[:6] + "\n" + KEY[6:], KEY[:6] + "\x1b" + KEY[6:]])
def test_a_key_a_header_cannot_carry_is_refused_with_exit_2_and_not_shown(tmp_path, key):
    with Emulator(key=KEY) as emu:
        env = {"CLOUDSIGHT_API_KEY": key, "CLOUDSIGHT_ENDPOINT": emu.url}
        done = tagger("run", str(photos(tmp_path)), "--ledger", "l.sqlite", env=env, cwd=tmp_path)
        assert emu.counters()["requests"] == 0
    assert done.returncode == 2, done.stderr
    assert "CLOUDSIGHT_API_KEY: the API key holds a control character" in done.stderr
    assert "internal error" not in done.stderr
    out = done.stdout + done.stderr
    assert KEY[:6] not in out and KEY[6:] not in out


def test_a_secret_in_a_config_file_and_in_a_flag_is_checked_alike(tmp_path):
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'[service]\napi_key = "{KEY}\\n"\napi_secret = "s3cr3t-value\\r\\n"\n')
    config = load_config(str(cfg), environ={})
    assert (config.api_key, config.api_secret) == (KEY, "s3cr3t-value")
    cfg.write_text('[service]\napi_secret = "s3cr\\u0007et"\n')
    with pytest.raises(UsageError, match="API secret holds a control character") as refused:
        load_config(str(cfg), environ={})
    assert "s3cr" not in str(refused.value)
    with pytest.raises(UsageError, match="--api-key: the API key holds a non-ASCII character"):
        load_config(None, {"api_key": "kéy-123"}, environ={})


def test_the_client_refuses_a_header_it_cannot_send_without_showing_it():
    with pytest.raises(ValueError) as simple:
        cs.SimpleAuth(KEY + "\r")
    with pytest.raises(ValueError) as oauth:
        cs.OAuth(KEY, "secret\nvalue")
    assert KEY not in str(simple.value) and "secret" not in str(oauth.value).replace("API secret", "")


@pytest.mark.slow
def test_a_service_that_echoes_the_key_has_it_redacted_from_output_and_ledger(tmp_path):
    echo = {"error": f"the key {KEY} is on a list"}  # a 200 with an error: the service refused the upload
    with Emulator(key=KEY, latency=(0.02, 0.05), faults=Faults(submit_fields=echo)) as emu:
        env = {"CLOUDSIGHT_API_KEY": KEY, "CLOUDSIGHT_ENDPOINT": emu.url}
        done = tagger("run", str(photos(tmp_path)), "--ledger", "l.sqlite", env=env, cwd=tmp_path)
        status = tagger("status", "--ledger", "l.sqlite", env=env, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "the key *** is on a list" in status.stdout, status.stdout
    assert KEY not in done.stdout + done.stderr + status.stdout + status.stderr
    assert KEY.encode() not in (tmp_path / "l.sqlite").read_bytes()


def test_one_redaction_serves_messages_and_logging(caplog):
    redact.remember("another-Secret-99")
    assert redact.redact("internal error (ValueError: b'CloudSight another-Secret-99\\r')") == (
        "internal error (ValueError: b'CloudSight ***\\r')"
    )
    record = logging.LogRecord("tagger", logging.WARNING, __file__, 1, "failed: %s", ("another-Secret-99",), None)
    assert redact.RedactFilter().filter(record) and record.getMessage() == "failed: ***"
