"""The command line contract: exit statuses, messages, help, secrets kept out of files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest
from helpers import fast_config, tagger

from tagger.cli import cli
from tagger.emulator import Emulator

ENV_FAST = {"TAGGER_CONFIG": ""}


def test_every_command_and_option_has_help():
    assert cli.help
    for name, command in cli.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.name}"


def test_every_command_says_what_costs_credits():
    from click.testing import CliRunner

    runner = CliRunner()
    assert "credit" in runner.invoke(cli, ["--help"]).output
    commands = [(name,) for name in cli.commands]
    commands += [(name, sub) for name, group in cli.commands.items() for sub in getattr(group, "commands", {})]
    for args in commands:
        out = runner.invoke(cli, [*args, "--help"])
        assert out.exit_code == 0, args
        text = " ".join(out.output.lower().split())
        assert "credit" in text or "costs nothing" in text, args
    retry_help = " ".join(runner.invoke(cli, ["retry", "--help"]).output.split())
    assert "no credit" in retry_help and "a credit each" in retry_help


def test_the_help_lists_every_export_profile_from_the_writers_table():
    from click.testing import CliRunner

    from tagger.exports.writer import PROFILES

    runner = CliRunner()
    for args, option in ((["run"], "--csv-profile"), (["apply"], "--csv-profile"), (["export"], "--profile")):
        command = cli.commands[args[0]]
        (param,) = [p for p in command.params if option in getattr(p, "opts", ())]
        assert param.help is not None and param.help.rstrip(".").endswith(", ".join(PROFILES)), args
        text = " ".join(runner.invoke(cli, [*args, "--help"]).output.split())
        assert "exiftool" in text and "resourcespace" in text, args


def test_a_config_that_would_hang_the_run_exits_2_with_one_sentence(photos, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[run]\npoll_interval = 0\n")
    out = tagger("--config", str(cfg), "run", str(photos), "--emulator", "--ledger", str(tmp_path / "l.sqlite"))
    assert out.returncode == 2
    assert "poll_interval" in out.stderr and "more than 0" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "l.sqlite").exists()


def test_python_dash_m_is_the_command():
    out = tagger("--version")
    assert out.returncode == 0 and "tagger" in out.stdout


@pytest.mark.slow
def test_no_key_is_one_sentence_and_exit_2(photos, tmp_path):
    out = tagger("run", str(photos), "--ledger", str(tmp_path / "l.sqlite"))
    assert out.returncode == 2
    assert "no API key" in out.stderr and "--emulator" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_refused_credentials_stop_at_once_with_exit_3(photos, tmp_path):
    with Emulator(key="the-right-key") as emu:
        out = tagger(
            "run",
            str(photos),
            "--ledger",
            str(tmp_path / "l.sqlite"),
            "--endpoint",
            emu.url,
            env={"CLOUDSIGHT_API_KEY": "a-wrong-key-0000"},
        )
        counters = emu.counters()
    assert out.returncode == 3, out.stderr
    assert "refused" in out.stdout + out.stderr
    assert "a-wrong-key-0000" not in out.stdout + out.stderr
    assert counters["submissions"] == 0
    assert counters["auth_failures"] == 1  # one probe, not one per file


@pytest.mark.slow
def test_the_key_never_reaches_a_file_or_the_output(photos, tmp_path):
    key, secret = "KEY-5f3a9c1e-do-not-leak", "SECRET-77b1-do-not-leak"
    with Emulator(key=key, secret=secret, latency=(0.05, 0.1)) as emu:
        out = tagger(
            "--config",
            str(fast_config(tmp_path)),
            "--debug",
            "run",
            str(photos),
            "--ledger",
            str(tmp_path / "state" / "l.sqlite"),
            "--csv",
            str(tmp_path / "c.csv"),
            "--endpoint",
            emu.url,
            env={"CLOUDSIGHT_API_KEY": key, "CLOUDSIGHT_API_SECRET": secret},
        )
        assert out.returncode == 0, out.stderr
        assert emu.counters()["submissions"] == 6
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".xmp" for p in written) and any(p.suffix == ".csv" for p in written)
    for path in written:
        data = path.read_bytes()
        assert key.encode() not in data and secret.encode() not in data, path
    assert key not in out.stdout + out.stderr and secret not in out.stdout + out.stderr


@pytest.mark.slow
def test_status_json_and_export(photos, tmp_path):
    ledger = str(tmp_path / "l.sqlite")
    out = tagger(
        "--config",
        str(fast_config(tmp_path)),
        "run",
        str(photos),
        "--emulator",
        "--ledger",
        ledger,
        "--sidecar-dir",
        str(tmp_path / "mirror"),
    )
    assert out.returncode == 0, out.stderr
    assert not list(photos.rglob("*.xmp"))
    assert len(list((tmp_path / "mirror").rglob("*.xmp"))) == 6
    assert (tmp_path / "mirror" / "sub" / "IMG_0001.JPG.xmp").exists()
    status = tagger("status", "--ledger", ledger, "--json")
    data = json.loads(status.stdout)
    assert {k: data[k] for k in ("total", "completed", "skipped", "failed", "pending")} == {
        "total": 6,
        "completed": 6,
        "skipped": 0,
        "failed": 0,
        "pending": 0,
    }
    export = tagger("export", "--csv", str(tmp_path / "out.csv"), "--ledger", ledger)
    assert export.returncode == 0
    lines = (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 7
    # "-" is standard output: the rows alone there (to pipe into a DAM's import), the count on standard error.
    piped = tagger("export", "--csv", "-", "--ledger", ledger, cwd=tmp_path)
    assert piped.returncode == 0 and piped.stdout.splitlines() == lines
    assert piped.stderr.strip().endswith("wrote 6 rows to standard output")
    jsonl = tagger("export", "--csv", "-", "--format", "jsonl", "--ledger", ledger, cwd=tmp_path)
    assert len([json.loads(line) for line in jsonl.stdout.splitlines()]) == 6
    assert not (tmp_path / "-").exists()
    # A run prints its summary on standard output: it refuses "-" before it sends anything.
    refused = tagger("run", str(photos), "--emulator", "--ledger", ledger, "--csv", "-", cwd=tmp_path)
    assert refused.returncode == 2 and "tagger export --csv -" in refused.stderr


def test_a_second_run_on_a_held_ledger_exits_3_naming_the_pid(photos, tmp_path):
    from tagger.ledger.store import Ledger

    ledger = Ledger(str(tmp_path / "l.sqlite"))
    ledger.acquire()
    try:
        out = tagger("run", str(photos), "--emulator", "--ledger", str(tmp_path / "l.sqlite"))
    finally:
        ledger.close()
    assert out.returncode == 3
    assert f"PID {os.getpid()}" in out.stderr


@pytest.mark.slow
def test_usage_errors_exit_2(tmp_path):
    assert tagger("run", str(tmp_path / "nope"), "--emulator", "--ledger", str(tmp_path / "l")).returncode == 2
    assert tagger("run").returncode == 2
    assert tagger("status", "--ledger", str(tmp_path / "missing.sqlite")).returncode == 2


@pytest.mark.slow
def test_ctrl_c_exits_3_and_the_rerun_resumes_without_duplicates(photos, tmp_path):
    import signal
    import time

    from helpers import make_photo

    for i in range(6, 16):
        make_photo(photos / f"more_{i}.jpg", i, size=(320, 240))
    with Emulator(latency=(1.0, 1.5)) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
        env["CLOUDSIGHT_API_KEY"] = emu.key
        args = [
            sys.executable,
            "-P",
            "-m",
            "tagger",
            "--config",
            str(fast_config(tmp_path)),
            "run",
            str(photos),
            "--max-in-flight",
            "3",
            "--endpoint",
            emu.url,
            "--ledger",
            str(tmp_path / "l.sqlite"),
        ]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while emu.counters()["submissions"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 3, err
        assert "interrupted" in err and "Traceback" not in err
        first = emu.counters()["submissions"]
        assert 0 < first < 16
        again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        counters = emu.counters()
    assert counters["submissions"] == 16 and counters["duplicates"] == 0
    assert len(list(photos.rglob("*.xmp"))) == 16


@pytest.mark.slow
def test_status_lists_reasons_and_retry_requeues_only_what_was_asked(photos, tmp_path):
    from tagger.emulator import Faults

    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this jpeg stops here")
    ledger = str(tmp_path / "l.sqlite")
    cfg = str(fast_config(tmp_path))
    with Emulator(latency=(0.05, 0.1), faults=Faults(unsure_rate=1.0)) as emu:
        env = {"CLOUDSIGHT_API_KEY": emu.key, "CLOUDSIGHT_ENDPOINT": emu.url}
        first = tagger("--config", cfg, "run", str(photos), "--ledger", ledger, env=env)
        assert first.returncode == 1, first.stderr
        status = tagger("status", "--ledger", ledger)
        assert "6  skipped: unsure" in status.stdout
        assert "1  failed: truncated or corrupt image" in status.stdout
        plain = tagger("--config", cfg, "run", str(photos), "--ledger", ledger, env=env)
        assert plain.returncode == 0  # the broken file failed before and is unchanged: a known failure, not new
        assert "1 known failure" in plain.stdout
        assert emu.counters()["submissions"] == 6  # a skipped image is never re-sent by a plain re-run
        emu.set_faults(Faults())
        retry = tagger("retry", "--skipped", "unsure", "--ledger", ledger, env=env)
        assert retry.returncode == 0 and "6 jobs queued again" in retry.stdout
        again = tagger("--config", cfg, "run", str(photos), "--ledger", ledger, env=env)
        assert again.returncode == 0 and "1 known failure" in again.stdout  # the broken file is still broken
        assert emu.counters()["submissions"] == 12
    data = json.loads(tagger("status", "--ledger", ledger, "--json").stdout)
    assert (data["completed"], data["skipped"], data["failed"]) == (6, 0, 1)


@pytest.mark.slow
def test_report_and_strip_from_the_command_line(photos, tmp_path):
    ledger = str(tmp_path / "l.sqlite")
    sidecar = photos / "IMG_0000.JPG.xmp"
    subprocess.run(
        ["exiftool", "-q", "-o", str(sidecar), "-XMP-xmp:Rating=5", str(photos / "IMG_0000.JPG")], check=True
    )
    assert (
        tagger("--config", str(fast_config(tmp_path)), "run", str(photos), "--emulator", "--ledger", ledger).returncode
        == 0
    )
    page = tmp_path / "sheet.html"
    out = tagger("report", "--html", str(page), "--ledger", ledger)
    assert out.returncode == 0 and "wrote 6 images" in out.stdout
    html = page.read_text(encoding="utf-8")
    thumbs = json.loads(html.split('<script type="application/json" id="thumbs">', 1)[1].split("</script>", 1)[0])
    assert len(thumbs) == 6 and all(len(v) > 500 for v in thumbs.values())  # one real JPEG per photo, inline
    # Dates as dates, not Unix seconds: "First run 2026-12-01T22:00:31Z".
    import re

    first = re.search(r"<dt>First run</dt><dd>([^<]*)</dd>", html).group(1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first), first
    stripped = tagger("strip", str(photos))
    assert stripped.returncode == 0 and "deleted 5" in stripped.stdout and "updated 1" in stripped.stdout
    assert sorted(p.name for p in photos.rglob("*.xmp")) == ["IMG_0000.JPG.xmp"]
    from helpers import exiftool_json

    (meta,) = exiftool_json(sidecar)
    assert meta["XMP-xmp:Rating"] == 5 and "XMP-dc:Description" not in meta


def test_the_emulator_command_serves_until_ctrl_c(tmp_path):
    import signal

    from helpers import make_photo

    from tagger import cloudsight as cs

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "tagger", "emulator", "--port", "0", "--latency", "0.05", "--key", "k1"]
        + ["--state", str(tmp_path / "emu.sqlite")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert "listening at http://127.0.0.1:" in line
        url = line.split("listening at ", 1)[1].strip()
        with cs.API(cs.SimpleAuth("k1"), base_url=url, sleep=lambda s: __import__("time").sleep(0.05)) as api:
            token = api.image_request(make_photo(tmp_path / "p.jpg", 3).read_bytes(), "p.jpg")["token"]
            assert api.wait(token, timeout=20)["status"] == cs.STATUS_COMPLETED
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:  # never leave a server behind, whatever failed
                proc.kill()
                proc.wait()
    assert proc.returncode == 0


@pytest.mark.slow
def test_config_goes_before_or_after_the_command(photos, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[run]\nledger = "{tmp_path / "from-config.sqlite"}"\nfirst_poll_delay = 0.1\npoll_interval = 0.05\n'
    )
    after = tagger("run", str(photos), "--emulator", "--config", str(cfg))
    assert after.returncode == 0, after.stderr
    assert (tmp_path / "from-config.sqlite").exists()
    before = tagger("--config", str(cfg), "status", "--json")
    assert json.loads(before.stdout)["completed"] == 6
    assert json.loads(tagger("status", "--json", "--config", str(cfg)).stdout)["completed"] == 6
