"""A file is as good a PATH as a folder (run, retry, show, strip); strip's dry run; sidecars left behind by moves."""

from __future__ import annotations

import shutil

import pytest
from helpers import exiftool_json, fast_config, make_photo, tagger

from tagger.emulator import Emulator


def _run(emu: Emulator, tmp_path, *args: str):
    return tagger(
        "--config",
        str(fast_config(tmp_path)),
        "run",
        *args,
        "--ledger",
        str(tmp_path / "l.sqlite"),
        "--endpoint",
        emu.url,
        env={"CLOUDSIGHT_API_KEY": emu.key},
    )


@pytest.mark.slow
def test_run_over_one_photo_writes_its_sidecar_and_counts_it(photos, tmp_path):
    one = photos / "IMG_0000.JPG"
    with Emulator(latency=(0.05, 0.1)) as emu:
        out = _run(emu, tmp_path, str(one))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "files: 1 total, 1 completed" in out.stdout and "sidecars written 1" in out.stdout
        assert (photos / "IMG_0000.JPG.xmp").exists()
        assert not (photos / "IMG_0002.JPG.xmp").exists()  # only the photo named
        (meta,) = exiftool_json(photos / "IMG_0000.JPG.xmp")
        assert meta.get("XMP-dc:Description")
        # Mixed with a folder: the folder's other photos are sent, the one already captioned is not.
        elsewhere = make_photo(tmp_path / "elsewhere" / "single.jpg", seed=99)
        mixed = _run(emu, tmp_path, str(photos / "sub"), str(elsewhere), str(one))
        assert mixed.returncode == 0, mixed.stdout + mixed.stderr
        assert "files: 5 total, 5 completed" in mixed.stdout
        assert (elsewhere.parent / "single.jpg.xmp").exists()
        assert emu.counters()["submissions"] == 1 + 3 + 1


@pytest.mark.slow
def test_retry_show_and_strip_take_a_photo(photos, tmp_path):
    broken = photos / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this jpeg stops here")
    with Emulator(latency=(0.05, 0.1)) as emu:
        assert _run(emu, tmp_path, str(photos)).returncode == 1
        retry = tagger("retry", "--failed", str(broken), "--endpoint", emu.url, "--ledger", str(tmp_path / "l.sqlite"))
        assert retry.returncode == 0 and "1 job queued again" in retry.stdout, retry.stdout + retry.stderr
        none = tagger(
            "retry",
            "--failed",
            str(photos / "IMG_0000.JPG"),
            "--endpoint",
            emu.url,
            "--ledger",
            str(tmp_path / "l.sqlite"),
        )
        assert "0 jobs queued again" in none.stdout
    show = tagger("show", str(photos / "IMG_0000.JPG"))
    assert show.returncode == 0 and "IMG_0000.JPG.xmp" in show.stdout
    dry = tagger("strip", "--dry-run", str(photos / "IMG_0000.JPG"))
    assert dry.returncode == 0, dry.stderr
    assert f"would be deleted: {photos / 'IMG_0000.JPG.xmp'}" in dry.stdout
    assert (photos / "IMG_0000.JPG.xmp").exists()
    whole = tagger("strip", "--dry-run", str(photos))
    assert "deleted 6" in whole.stdout and len(list(photos.rglob("*.xmp"))) == 6
    stripped = tagger("strip", str(photos / "IMG_0000.JPG"))
    assert stripped.returncode == 0, stripped.stderr
    assert stripped.stdout.strip() == "deleted 1"
    assert not (photos / "IMG_0000.JPG.xmp").exists() and (photos / "IMG_0002.JPG.xmp").exists()


@pytest.mark.slow
def test_status_lists_sidecars_left_behind_and_strip_orphans_removes_them(photos, tmp_path):
    with Emulator(latency=(0.05, 0.1)) as emu:
        assert _run(emu, tmp_path, str(photos)).returncode == 0
        (photos / "moved").mkdir()
        shutil.move(photos / "IMG_0000.JPG", photos / "moved" / "IMG_0000.JPG")
        assert _run(emu, tmp_path, str(photos)).returncode == 0
    ledger = str(tmp_path / "l.sqlite")
    status = tagger("status", "--ledger", ledger)
    assert "sidecars left behind (1;" in status.stdout
    assert str(photos / "IMG_0000.JPG.xmp") in status.stdout
    dry = tagger("strip", "--orphans", "--dry-run", "--ledger", ledger)
    assert f"would be deleted: {photos / 'IMG_0000.JPG.xmp'}" in dry.stdout
    assert (photos / "IMG_0000.JPG.xmp").exists()
    gone = tagger("strip", "--orphans", "--ledger", ledger)
    assert gone.returncode == 0 and gone.stdout.strip() == "deleted 1", gone.stdout + gone.stderr
    assert not (photos / "IMG_0000.JPG.xmp").exists()
    assert (photos / "moved" / "IMG_0000.JPG.xmp").exists() and len(list(photos.rglob("*.xmp"))) == 6
    assert "left behind" not in tagger("status", "--ledger", ledger).stdout
