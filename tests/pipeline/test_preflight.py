"""Everything a run needs is checked before the first upload: every problem at once, exit 2, nothing sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fast_config, tagger

from tagger.config import Config
from tagger.emulator import Emulator
from tagger.pipeline.preflight import check_run


def _run(emu: Emulator, *args: str, config: Path | None = None) -> object:
    pre = ["--config", str(config)] if config else []
    return tagger(*pre, "run", *args, "--endpoint", emu.url, env={"CLOUDSIGHT_API_KEY": emu.key})


def test_a_bad_csv_profile_stops_the_run_before_anything_is_sent(photos, tmp_path):
    with Emulator(latency=(0.05, 0.1)) as emu:
        out = _run(
            emu,
            str(photos),
            "--ledger",
            str(tmp_path / "l.sqlite"),
            "--csv",
            str(tmp_path / "out.csv"),
            "--csv-profile",
            "nosuch",
            config=fast_config(tmp_path),
        )
        counters = emu.counters()
    assert out.returncode == 2, out.stdout + out.stderr
    assert "unknown CSV profile 'nosuch'" in out.stderr
    assert counters["submissions"] == 0 and counters["requests"] == 0
    assert not list(photos.rglob("*.xmp")) and not (tmp_path / "out.csv").exists()


def test_the_dry_run_checks_the_same(photos, tmp_path):
    out = tagger("run", str(photos), "--dry-run", "--csv", str(tmp_path / "o.csv"), "--csv-profile", "nosuch")
    assert out.returncode == 2
    assert "unknown CSV profile" in out.stderr
    assert "plan:" not in out.stdout


@pytest.mark.slow
def test_every_problem_is_reported_at_once(photos, tmp_path):
    (tmp_path / "afile").write_text("x")
    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_bytes(b"caf\xe9 cr\xe8me\n")
    cfg = tmp_path / "bad.toml"
    cfg.write_text(
        "[run]\nworkers = 'many'\npoll_interval = 0\nconfirm_above = -3\n"
        f"[keywords]\nvocabulary = '{vocabulary}'\n[scan]\nexclude = ['@eaDir/']\n"
    )
    with Emulator(latency=(0.05, 0.1)) as emu:
        out = _run(
            emu,
            str(photos),
            str(tmp_path / "gone"),
            "--ledger",
            str(tmp_path / "l.sqlite"),
            "--max-credits",
            "-1",
            config=cfg,
        )
        counters = emu.counters()
    assert out.returncode == 2
    err = out.stderr
    for needle in (
        "workers must be an integer",
        "poll_interval",
        "confirm_above must not be negative",
        "gone does not exist",
        "--max-credits must be 0 or more",
    ):
        assert needle in err, (needle, err)
    assert "problems, nothing was sent" in err
    assert counters["requests"] == 0
    # Once the settings themselves are sound, the files they name are checked too.
    cfg.write_text(
        f"[keywords]\nvocabulary = '{vocabulary}'\n[output]\nsidecar_dir = '{tmp_path / 'afile'}'\ncsv = '{tmp_path}'\n"
    )
    with Emulator(latency=(0.05, 0.1)) as emu:
        out = _run(emu, str(photos), "--ledger", str(tmp_path / "afile" / "l.sqlite"), config=cfg)
        counters = emu.counters()
    assert out.returncode == 2
    assert "not UTF-8" in out.stderr  # the vocabulary, parsed
    assert "--sidecar-dir" in out.stderr and "is a file, not a folder" in out.stderr
    assert f"--csv {tmp_path} is a folder" in out.stderr
    assert "ledger" in out.stderr and "afile is a file" in out.stderr
    assert counters["requests"] == 0
    assert not (tmp_path / "l.sqlite").exists()


def test_one_problem_is_one_line(photos, tmp_path):
    out = tagger("run", str(photos), "--emulator", "--max-credits", "-1", "--ledger", str(tmp_path / "l.sqlite"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["tagger: --max-credits must be 0 or more, not -1"]


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"csv_profile": "nope"}, "unknown CSV profile"),
        ({"csv": "-"}, "--csv -"),
        ({"exclude": ("ok/",)}, None),
    ],
)
def test_check_run_as_a_library(photos, tmp_path, changes, needle):
    config = Config(ledger=str(tmp_path / "l.sqlite"), api_key="k").replace(**changes)
    problems = check_run(config, [str(photos)])
    assert (needle is None and problems == []) or any(needle in p for p in problems), problems
