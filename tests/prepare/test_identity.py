"""Identity end to end: metadata edits in every format cost nothing; an older ledger upgrades without a submission.

The pipeline runs in-process against the emulator over real sockets; exiftool
edits the originals (as Lightroom, digiKam or the README's ``exiftool -csv=``
workflow do); the emulator's submission counter says what was paid for.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pillow_heif
import pytest
from click.testing import CliRunner
from corpus import photo, prophoto_profile
from helpers import config_for, dry_with, exiftool_json, run_with
from rawfiles import dng, raw_scene
from rawfiles import jpeg as raw_jpeg

from tagger.cli import cli
from tagger.prepare.hashing import content_hash

pillow_heif.register_heif_opener()


def _image(path: Path, seed: int, *, mark: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".dng":
        scene = raw_scene()
        scene[seed % 50 : seed % 50 + 8, 40:48] = (0.9, 0.9, 0.9)
        if mark:
            scene[100:110, 100:110] = (0.1, 0.1, 0.9)
        path.write_bytes(dng(scene, raw_jpeg(scene)))
        return path
    im = photo((240, 160), seed=seed)
    if mark:
        for x in range(20):
            im.putpixel((100 + x, 80), (0, 255, 0))
    params = {
        ".webp": {"quality": 85},
        ".heic": {"quality": 85},
        ".jpg": {"quality": 90},
        ".png": {"icc_profile": prophoto_profile()},
    }.get(path.suffix, {})
    im.save(path, **params)
    return path


def _exiftool(*args: str) -> str:
    run = subprocess.run(["exiftool", *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout + run.stderr


def _edit(path: Path, text: str) -> None:
    """A metadata edit as users make them: caption, keywords, author, GPS."""
    before = path.read_bytes()
    out = _exiftool(
        "-overwrite_original",
        f"-XMP-dc:Description={text}",
        "-XMP-dc:Subject+=edited",
        "-Keywords+=edited",
        "-Artist=Someone",
        "-GPSLatitude=48.1",
        "-GPSLatitudeRef=N",
        str(path),
    )
    assert "1 image files updated" in out, out
    assert path.read_bytes() != before


def _rows(ledger: Path, sql: str, params: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(ledger)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _jobs(ledger: Path) -> dict[bytes, tuple]:
    """File name -> (job id, token, caption) of active files."""
    rows = _rows(
        ledger,
        "SELECT f.name, j.id, j.token, j.caption FROM files f JOIN jobs j ON j.id = f.job_id WHERE f.state = 'active'",
    )
    return {r[0]: r[1:] for r in rows}


FORMATS = ("a.tif", "b.webp", "c.heic", "d.dng")


@pytest.mark.slow
def test_metadata_edits_to_tiff_webp_heic_dng_and_the_csv_round_trip_cost_nothing(emulator, tmp_path):
    root = tmp_path / "photos"
    images = [_image(root / name, seed=i) for i, name in enumerate(FORMATS)]
    config = config_for(emulator, tmp_path)
    ledger = Path(config.ledger_path)
    first = run_with(emulator, config, [root])
    assert first.exit_code == 0, first.stopped
    assert emulator.counters()["submissions"] == 4
    captions = _jobs(ledger)
    assert len(captions) == 4 and all(c[2] for c in captions.values())

    for image in images:
        _edit(image, "edited in place")
    emulator.reset_counters()
    dry = dry_with(emulator, config, [root])
    second = run_with(emulator, config, [root])
    assert second.exit_code == 0, second.stopped
    expected = dict(
        new=0,
        changed=0,
        moved=0,
        copied=0,
        missing=0,
        unchanged=4,
        unreadable=0,
        paired=0,
        adopted=0,
        credits=0,
        similar=0,
        excluded=0,
        known_failures=0,
    )
    assert dry.plan.as_dict() == second.plan.as_dict() == expected
    assert emulator.counters()["submissions"] == 0
    assert _jobs(ledger) == captions

    # The README's workflow: export for exiftool, embed with exiftool -csv=, run again.
    csv_path = tmp_path / "captions.csv"
    export = CliRunner().invoke(
        cli,
        ["export", "--csv", str(csv_path), "--ledger", str(ledger), "--profile", "exiftool"],
        env={"TAGGER_CONFIG": ""},
    )
    assert export.exit_code == 0, export.output
    out = _exiftool("-csv=" + str(csv_path), "-sep", "; ", "-overwrite_original", *map(str, images))
    assert "4 image files updated" in out, out
    embedded = {Path(m["SourceFile"]).name: m.get("XMP-dc:Description") for m in exiftool_json(*images)}
    # The photo's own description (the user's "edited in place") stays: the exiftool profile carries the sidecar
    # merge's decisions (issue 20: it used to overwrite it). The round trip still changes metadata only.
    assert embedded == {image.name: "edited in place" for image in images}
    third = run_with(emulator, config, [root])
    assert third.exit_code == 0 and third.plan.as_dict() == expected
    assert emulator.counters()["submissions"] == 0

    # New pixels are still a new picture: one submission, a new caption for that file only.
    tif = root / "a.tif"
    stat = tif.stat()
    _image(tif, seed=0, mark=True)
    os.utime(tif, ns=(stat.st_mtime_ns + 10**9, stat.st_mtime_ns + 10**9))
    # A one-pixel line is below what the similar-photo fingerprint sees (it would share the old caption):
    # this checks identity, so reuse is off.
    fourth = run_with(emulator, config.replace(reuse_similar=False), [root])
    assert fourth.exit_code == 0
    assert (fourth.plan.changed, fourth.plan.unchanged, fourth.plan.credits) == (1, 3, 1)
    assert emulator.counters()["submissions"] == 1
    after = _jobs(ledger)
    assert after[b"a.tif"][0] != captions[b"a.tif"][0]
    assert {k: v for k, v in after.items() if k != b"a.tif"} == {k: v for k, v in captions.items() if k != b"a.tif"}


# --- upgrading a ledger an older tagger wrote ----------------------------------------------


def _scheme_1(path: Path) -> str:
    """What tagger computed before m007: JPEG by structure (unchanged since), every other format whole."""
    if path.suffix == ".jpg":
        return content_hash(str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _downgrade(ledger: Path, files: list[Path]) -> None:
    """Turn the ledger into the one a pre-m007 tagger would have left for the same run: schema and hashes."""
    con = sqlite3.connect(ledger)
    try:
        mapping = {content_hash(str(p)): _scheme_1(p) for p in files}
        con.execute("DROP INDEX files_old_scheme")
        con.execute("ALTER TABLE files DROP COLUMN hash_scheme")
        con.execute("DELETE FROM _sqlite_migrations WHERE name = 'm007_hash_scheme'")
        for new, old in mapping.items():
            con.execute("UPDATE files SET content_hash = ? WHERE content_hash = ?", (old, new))
            con.execute("UPDATE jobs SET content_hash = ? WHERE content_hash = ?", (old, new))
        con.commit()
    finally:
        con.close()


@pytest.mark.slow
def test_an_older_ledger_upgrades_without_a_submission_even_when_files_are_edited(emulator, tmp_path):
    root = tmp_path / "photos"
    album = root / "album"
    # (h.png carries an ICC profile: scheme 1 hashed it, scheme 2 does not.)
    names = ["a.tif", "b.webp", "c.jpg", "d.tif", "d_copy.tif", "e.heic", "f.tif", "g.dng", "h.png", "i.gif"]
    images = {name: _image(album / name, seed=i) for i, name in enumerate(names) if name != "d_copy.tif"}
    images["d_copy.tif"] = album / "d_copy.tif"
    shutil.copy2(images["d.tif"], images["d_copy.tif"])
    config = config_for(emulator, tmp_path)
    ledger = Path(config.ledger_path)
    assert run_with(emulator, config, [root]).exit_code == 0
    assert emulator.counters()["submissions"] == 9  # the copy shares its job
    _downgrade(ledger, list(images.values()))
    before = _jobs(ledger)
    old_hashes = dict(_rows(ledger, "SELECT name, content_hash FROM files"))
    assert old_hashes[b"a.tif"] == hashlib.sha256(images["a.tif"].read_bytes()).hexdigest()

    # Between the old tagger's last run and the new one's first: a move, and metadata edits.
    (root / "moved").mkdir()
    shutil.move(images["b.webp"], root / "moved" / "b.webp")  # moved: found by its scheme-1 hash
    _edit(images["c.jpg"], "edited before the upgrade")  # scheme 1 already ignored JPEG metadata
    _edit(images["d_copy.tif"], "edited before the upgrade")  # its twin d.tif is unchanged: re-keyed, then matched
    _edit(images["f.tif"], "edited before the upgrade")  # no twin: scheme 1 kept no trace of its pixels

    emulator.reset_counters()
    columns = ", ".join(r[1] for r in _rows(ledger, "PRAGMA table_info(files)"))
    files_before = _rows(ledger, f"SELECT {columns} FROM files ORDER BY id")
    expected = dict(
        new=0,
        changed=1,
        moved=1,
        copied=0,
        missing=0,
        unchanged=8,
        unreadable=0,
        paired=0,
        adopted=0,
        credits=1,
        similar=0,
        excluded=0,
        known_failures=0,
    )
    dry = dry_with(emulator, config, [root])
    assert dry.plan.as_dict() == expected
    # A dry run writes nothing (opening the ledger adds m007's empty column, as any migration would).
    assert _rows(ledger, f"SELECT {columns} FROM files ORDER BY id") == files_before
    assert _rows(ledger, "SELECT count(*) FROM files WHERE hash_scheme IS NOT NULL") == [(0,)]
    upgrade = run_with(emulator, config, [root])
    assert upgrade.exit_code == 0, upgrade.stopped
    assert upgrade.plan.as_dict() == expected
    # f.tif is the one file sent again, as the old tagger would have sent it: the cost of an edit nobody can prove.
    assert emulator.counters()["submissions"] == 1
    after = _jobs(ledger)
    for name in ("a.tif", "c.jpg", "d.tif", "d_copy.tif", "e.heic", "g.dng", "b.webp", "h.png", "i.gif"):
        assert after[name.encode()] == before[name.encode()], name  # same job, token and caption
    assert after[b"f.tif"][0] != before[b"f.tif"][0]
    assert _rows(ledger, "SELECT count(*) FROM files WHERE hash_scheme IS NOT 2") == [(0,)]
    assert _rows(
        ledger,
        "SELECT count(*) FROM files INDEXED BY files_old_scheme WHERE hash_scheme IS NULL AND content_hash IS NOT NULL",
    ) == [(0,)]
    for name in ("a.tif", "e.heic", "g.dng", "h.png", "i.gif"):
        digest = content_hash(str(images[name]))
        assert _rows(ledger, "SELECT j.id FROM jobs j WHERE j.content_hash = ?", (digest,)) == [
            (before[name.encode()][0],)
        ]

    # After the upgrade: metadata edits to every kind of file cost nothing, and neither does a no-op run.
    for name in ("a.tif", "d.tif", "e.heic", "g.dng", "c.jpg", "h.png", "i.gif"):
        _edit(images[name], "edited after the upgrade")
    _edit(root / "moved" / "b.webp", "edited after the upgrade")
    emulator.reset_counters()
    later = run_with(emulator, config, [root])
    assert later.exit_code == 0
    assert later.plan.as_dict() == dict(expected, changed=0, moved=0, unchanged=10, credits=0)
    assert emulator.counters()["submissions"] == 0
    assert _jobs(ledger) == after


@pytest.mark.slow
def test_files_recorded_twice_by_an_older_tagger_keep_their_captions(emulator, tmp_path):
    """Two TIFFs differing only in metadata were two jobs under scheme 1; each file keeps its own after the upgrade."""
    root = tmp_path / "photos"
    one = _image(root / "one.tif", seed=3)
    two = root / "two.tif"
    shutil.copy2(one, two)
    _edit(two, "a different caption")
    config = config_for(emulator, tmp_path)
    ledger = Path(config.ledger_path)
    assert run_with(emulator, config, [root]).exit_code == 0
    assert emulator.counters()["submissions"] == 1  # scheme 2: one picture
    # Scheme 1 would have made two jobs: build that ledger.
    _downgrade(ledger, [one])
    con = sqlite3.connect(ledger)
    job = con.execute("SELECT * FROM jobs").fetchone()
    cols = [d[1] for d in con.execute("PRAGMA table_info(jobs)")]
    values = dict(
        zip(cols, job, strict=True),
        id=None,
        content_hash=_scheme_1(two),
        token="second-token",
        caption="second caption",
    )
    con.execute(
        f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", [values[c] for c in cols]
    )
    second = con.execute("SELECT max(id) FROM jobs").fetchone()[0]
    assert (
        con.execute(
            "UPDATE files SET content_hash = ?, job_id = ? WHERE name = ?", (_scheme_1(two), second, b"two.tif")
        ).rowcount
        == 1
    )
    con.commit()
    con.close()
    # (two.tif's sidecar holds the first caption, written before: the first run after the upgrade rewrites it.)
    emulator.reset_counters()
    upgrade = run_with(emulator, config, [root])  # the first run after the upgrade
    assert upgrade.exit_code == 0 and upgrade.plan.credits == 0 and upgrade.plan.unchanged == 2
    assert emulator.counters()["submissions"] == 0
    captions = {name: job[2] for name, job in _jobs(ledger).items()}
    assert captions[b"two.tif"] == "second caption" and captions[b"one.tif"] not in (None, "second caption")
    (meta,) = exiftool_json(two.with_name(two.name + ".xmp"))
    assert meta["XMP-tagger:Caption"] == "second caption"
    assert meta["XMP-dc:Description"] == "a different caption"  # the user's own, in the image: never shadowed
    # The picture's identity is one now: a third copy, edited too, takes one of the two captions for free.
    three = root / "three.tif"
    shutil.copy2(two, three)
    _edit(three, "a third caption")
    again = run_with(emulator, config, [root])
    assert again.exit_code == 0 and (again.plan.copied, again.plan.credits) == (1, 0)
    assert emulator.counters()["submissions"] == 0
    assert {name: job[2] for name, job in _jobs(ledger).items()}[b"three.tif"] in (
        captions[b"one.tif"],
        "second caption",
    )
