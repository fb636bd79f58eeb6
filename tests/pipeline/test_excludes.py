"""Leaving things out: NAS thumbnails and trash by default, gitignore-style patterns, tagger's own folders."""

from __future__ import annotations

import os

import pytest
from helpers import fast_config, make_photo, synology_tree, tagger

from tagger.emulator import Emulator
from tagger.pipeline.excludes import Excludes
from tagger.pipeline.scan import scan


@pytest.mark.slow
def test_nothing_under_eadir_is_paid_for_or_gets_a_sidecar(tmp_path):
    root = tmp_path / "volume1" / "photo"
    mine = synology_tree(root)
    cfg = fast_config(tmp_path)
    cfg.write_text(cfg.read_text() + "[scan]\nexclude = ['scans/']\n")
    with Emulator(latency=(0.05, 0.1)) as emu:
        out = tagger(
            "--config",
            str(cfg),
            "run",
            str(root),
            "--ledger",
            str(tmp_path / "l.sqlite"),
            "--endpoint",
            emu.url,
            env={"CLOUDSIGHT_API_KEY": emu.key},
        )
        counters = emu.counters()
    assert out.returncode == 0, out.stdout + out.stderr
    assert counters["submissions"] == len(mine)
    sidecars = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.xmp"))
    assert sidecars == [f"2023/{p.name}.xmp" for p in mine]
    # @eaDir twice (top level and 2023/), #recycle, scans/ (the config's pattern); .Trash-1000 is hidden anyway.
    assert "4 left out by exclude patterns" in out.stdout
    dry = tagger("run", str(root), "--dry-run", "--exclude", "2023/", "--ledger", str(tmp_path / "l2.sqlite"))
    assert dry.returncode == 0
    # 2023/ (the flag), @eaDir, #recycle: scans/draft.jpg alone would be paid for.
    assert "1 new" in dry.stdout and "3 left out" in dry.stdout and "1 credit would be spent" in dry.stdout


def test_patterns_are_gitignore_style_and_a_default_can_be_taken_back(tmp_path):
    synology_tree(tmp_path)
    root = os.fsencode(tmp_path)

    def found(excludes: Excludes) -> set[str]:
        return {
            os.path.relpath(os.fsdecode(os.path.join(f.path, n)), tmp_path)
            for f in scan([root], excludes)
            for n, _, _ in f.files
        }

    default = found(Excludes())
    assert default == {"2023/IMG_0.JPG", "2023/IMG_1.JPG", "2023/IMG_2.JPG", "scans/draft.jpg"}
    back = found(Excludes(("!@eaDir/", "*.JPG")))
    assert "@eaDir/SYNOFILE_THUMB.jpg" in back and "2023/IMG_0.JPG" not in back
    own = Excludes(own_folders=(str(tmp_path / "scans"),))
    assert "scans/draft.jpg" not in found(own) and own.folders_left_out == 4


@pytest.mark.slow
def test_a_sidecar_folder_inside_the_root_is_left_out(photos, tmp_path):
    mirror = photos / "sidecars"
    make_photo(mirror / "stray.jpg", seed=50)
    out = tagger(
        "run",
        str(photos),
        "--emulator",
        "--sidecar-dir",
        str(mirror),
        "--ledger",
        str(tmp_path / "l.sqlite"),
        "--config",
        str(fast_config(tmp_path)),
    )
    assert out.returncode == 0, out.stderr
    assert "6 new" in out.stdout and "1 left out" in out.stdout
    assert not (mirror / "sidecars").exists()
