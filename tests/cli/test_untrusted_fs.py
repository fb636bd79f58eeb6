"""Issue 18, the filesystem side: links tagger did not make, outputs over inputs, one lock per ledger, odd names.

tagger is run by root from cron over folders other people write to: these
runs are real (the CLI in a subprocess, the emulator on loopback, a real
ledger) and, where the finding needs it, as root for real.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fast_config, make_photo, tagger

from tagger.emulator import Emulator

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="the finding is about a run as root; run this test as root")


def run(photos: Path, tmp_path: Path, *extra: str, emulator: Emulator | None = None) -> subprocess.CompletedProcess:
    """A real run over ``photos`` against an emulator (the in-process one unless given)."""
    args = ["--config", str(fast_config(tmp_path)), "run", str(photos), "--ledger", str(tmp_path / "l.sqlite")]
    if emulator is None:
        args.append("--emulator")
        return tagger(*args, *extra)
    return tagger(
        *args, "--endpoint", emulator.url, *extra, env={"CLOUDSIGHT_API_KEY": emulator.key, "TAGGER_CONFIG": ""}
    )


def status(tmp_path: Path) -> dict:
    out = tagger("status", "--ledger", str(tmp_path / "l.sqlite"), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# --- 1. never follow a link tagger did not make ------------------------------------------------


@needs_root
@pytest.mark.slow
def test_root_run_over_a_dangling_symlink_sidecar_creates_nothing_outside_the_tree(tmp_path):
    # The finding: the write created the link's target in a folder only root may write, given to the photo's owner.
    vault = tmp_path / "vault"
    vault.mkdir(mode=0o700)
    planted = vault / "planted.xmp"
    photos = tmp_path / "photos"
    for i in range(3):
        make_photo(photos / f"IMG_{i:04d}.JPG", seed=i, size=(96, 64))
    os.chown(photos, 1234, 1234)
    for p in photos.iterdir():
        os.chown(p, 1234, 1234)
    link = photos / "IMG_0000.JPG.xmp"
    link.symlink_to(planted)
    out = run(photos, tmp_path)
    assert not planted.exists() and os.listdir(vault) == []
    assert link.is_symlink() and os.readlink(link) == str(planted)
    assert out.returncode == 1, out.stderr  # a sidecar left unwritten
    assert "IMG_0000.JPG.xmp: is a symbolic link; left alone" in out.stderr
    data = status(tmp_path)
    assert data["unwritten"] == 1 and data["completed"] == 2
    [(reason, n)] = [(r, n) for r, n in data["reasons"].items() if r.startswith("unwritten")]
    assert "is a symbolic link; left alone" in reason and n == 1
    # The two others were written, and given to the photo's owner.
    for i in (1, 2):
        st = os.lstat(photos / f"IMG_{i:04d}.JPG.xmp")
        assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid) == (1234, 1234)
    # A second run tries again, and still leaves it alone.
    again = run(photos, tmp_path)
    assert again.returncode == 1 and not planted.exists()


@needs_root
@pytest.mark.slow
def test_a_photo_linked_to_a_root_only_file_is_not_uploaded(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    private = make_photo(secret / "private.jpg", seed=9, size=(96, 64))
    os.chmod(private, 0o600)
    photos = tmp_path / "photos"
    make_photo(photos / "own.jpg", seed=1, size=(96, 64))
    (photos / "stolen.jpg").symlink_to(private)
    with Emulator(latency=(0.01, 0.02), seed=1) as emu:
        out = run(photos, tmp_path, emulator=emu)
        assert out.returncode == 0, out.stderr
        assert emu.counters()["submissions"] == 1
    assert not (photos / "stolen.jpg.xmp").exists()
    assert (photos / "own.jpg.xmp").exists()
    assert status(tmp_path)["total"] == 1


# --- 3. one lock per ledger, however it is reached ----------------------------------------------


@pytest.mark.parametrize("held_by", ["real", "link"])
@pytest.mark.slow
def test_the_same_ledger_through_a_symlink_is_the_same_lock(photos, tmp_path, held_by):
    # The finding: a second run through a symlink took a second lock; two runs went at once and paid twice.
    from tagger.ledger.store import Ledger

    real = tmp_path / "data" / "l.sqlite"
    real.parent.mkdir()
    Ledger(str(real)).close()
    file_link = tmp_path / "file-link.sqlite"
    file_link.symlink_to(real)
    folder_link = tmp_path / "folder-link"
    folder_link.symlink_to(real.parent)
    holder = Ledger(str(real if held_by == "real" else file_link))
    holder.acquire()
    try:
        for spelling in (real, file_link, folder_link / "l.sqlite", tmp_path / "data" / ".." / "data" / "l.sqlite"):
            if str(spelling) == str(real if held_by == "real" else file_link):
                continue
            out = tagger("run", str(photos), "--emulator", "--ledger", str(spelling))
            assert out.returncode == 3, (spelling, out.stderr)
            assert f"PID {os.getpid()}" in out.stderr
    finally:
        holder.close()
    assert not list(photos.rglob("*.xmp"))  # nothing ran
    assert "l.sqlite.lock" in os.listdir(tmp_path / "data")
    assert not (tmp_path / "file-link.sqlite.lock").exists()


# --- 2. no output over an input -----------------------------------------------------------------


@pytest.mark.slow
def test_two_roots_in_one_sidecar_dir_get_two_sidecars_and_show_finds_each(tmp_path):
    # The finding: A/IMG_0001.JPG and B/IMG_0001.JPG mapped onto one sidecar: B's caption lost, `show B/..` showed A's.
    a, b = tmp_path / "A", tmp_path / "B"
    make_photo(a / "IMG_0001.JPG", seed=1, size=(96, 64))
    make_photo(b / "IMG_0001.JPG", seed=2, size=(96, 64))
    mirror = tmp_path / "mirror"
    ledger = str(tmp_path / "l.sqlite")
    cfg = str(fast_config(tmp_path))
    out = tagger("--config", cfg, "run", str(a), str(b), "--emulator", "--ledger", ledger, "--sidecar-dir", str(mirror))
    assert out.returncode == 0, out.stderr
    side_a = mirror / str(a).lstrip("/") / "IMG_0001.JPG.xmp"
    side_b = mirror / str(b).lstrip("/") / "IMG_0001.JPG.xmp"
    assert sorted(mirror.rglob("*.xmp")) == sorted([side_a, side_b])
    tokens = {
        p: json.loads(
            subprocess.run(["exiftool", "-j", "-XMP-tagger:Token", str(p)], capture_output=True, check=True).stdout
        )[0]["Token"]
        for p in (side_a, side_b)
    }
    assert len(set(tokens.values())) == 2
    captions = {}
    for photo in (a / "IMG_0001.JPG", b / "IMG_0001.JPG"):
        shown = tagger("show", str(photo), "--json", "--sidecar-dir", str(mirror), "--ledger", ledger)
        assert shown.returncode == 0, shown.stderr
        captions[photo] = json.loads(shown.stdout)["digiKam"]["description"]
        text = tagger("show", str(photo), "--sidecar-dir", str(mirror), "--ledger", ledger).stdout
        assert str(side_a if photo.parent == a else side_b) in text
    assert len(set(captions.values())) == 2 and all(captions.values())


@pytest.mark.slow
def test_a_single_root_keeps_its_mirror_layout(photos, tmp_path):
    mirror = tmp_path / "mirror"
    out = run(photos, tmp_path, "--sidecar-dir", str(mirror))
    assert out.returncode == 0, out.stderr
    assert (mirror / "sub" / "IMG_0001.JPG.xmp").exists() and len(list(mirror.rglob("*.xmp"))) == 6


@pytest.mark.slow
def test_outputs_over_inputs_are_refused_before_anything_is_sent(photos, tmp_path):
    # The findings: --csv or --html at a photo overwrote the photo; export --csv at the ledger destroyed it.
    ledger = tmp_path / "l.sqlite"
    photo = photos / "IMG_0000.JPG"
    before = photo.read_bytes()
    with Emulator(latency=(0.01, 0.02), seed=1) as emu:
        for dest, needle in (
            (photo, "is a photo"),
            (photos / "sub" / "IMG_0001.JPG.xmp", "would overwrite a sidecar"),
            (ledger, "is the ledger"),
            (str(ledger) + "-wal", "is the ledger (-wal)"),
            (photos / "captions.jpg", "inside the scanned folder"),
            (photos / "captions", "inside the scanned folder"),
        ):
            out = run(photos, tmp_path, "--csv", str(dest), emulator=emu)
            assert out.returncode == 2 and needle in out.stderr, (dest, out.stderr)
        assert emu.counters()["requests"] == 0
    assert photo.read_bytes() == before
    assert not ledger.exists() and not list(photos.rglob("*.xmp"))
    assert not (photos / "captions.jpg").exists() and not (photos / "captions").exists()
    # A CSV inside the tree with a name no run scans is fine.
    ok = run(photos, tmp_path, "--csv", str(photos / "captions.csv"))
    assert ok.returncode == 0, ok.stderr
    db = ledger.read_bytes()
    link = tmp_path / "ledger-link.sqlite"
    link.symlink_to(ledger)
    hard = tmp_path / "ledger-hard"
    os.link(ledger, hard)
    for cmd, option in (("export", "--csv"), ("report", "--html")):
        for dest in (ledger, link, hard, str(ledger) + ".lock", photo):
            out = tagger(cmd, option, str(dest), "--ledger", str(ledger))
            assert out.returncode == 2 and ("is the ledger" in out.stderr or "is a photo" in out.stderr), out.stderr
    # The token journal, the built-in emulator's state and the review page's thumbnails live beside the ledger.
    journal = tmp_path / "l.sqlite.tokens"
    kept = journal.read_bytes() if journal.exists() else None
    for dest, needle in (
        (journal, "is the ledger (.tokens)"),
        (tmp_path / "l.emulator.sqlite", "a file tagger keeps beside the ledger"),
        (tmp_path / "l.sqlite.thumbs" / "ab.jpg", "a file tagger keeps beside the ledger"),
    ):
        out = tagger("export", "--csv", str(dest), "--ledger", str(ledger))
        assert out.returncode == 2 and needle in out.stderr, (dest, out.stderr)
    assert (journal.read_bytes() if journal.exists() else None) == kept
    assert ledger.read_bytes() == db and photo.read_bytes() == before
    assert tagger("status", "--ledger", str(ledger)).returncode == 0


# --- 4. small ones ------------------------------------------------------------------------------


def test_a_fifo_named_as_a_path_is_refused_with_its_reason(photos, tmp_path):
    # The finding: a FIFO given as PATH exited 0, silently.
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with Emulator(latency=(0.01, 0.02), seed=1) as emu:
        out = tagger(
            "run",
            str(photos),
            str(fifo),
            "--endpoint",
            emu.url,
            "--ledger",
            str(tmp_path / "l.sqlite"),
            env={"CLOUDSIGHT_API_KEY": emu.key, "TAGGER_CONFIG": ""},
            timeout=60,
        )
        assert emu.counters()["requests"] == 0
    assert out.returncode == 2, out.stderr
    assert f"{fifo} is a named pipe (FIFO), not a photo or a folder" in out.stderr


def test_control_characters_in_embedded_metadata_are_dropped_not_fatal(tmp_path):
    # The finding: EXIF with control characters or U+FFFE made the sidecar never written ("refusing ... broken packet").
    from PIL import Image

    from tagger.sidecars.write import SidecarContent, write_sidecar

    exif = Image.Exif()
    exif[0x010E] = "Harbour\x01 at dusk\x1b"
    exif[0x9C9C] = "note\ufffe with\x07 bell".encode("utf-16-le") + b"\0\0"
    exif[0x013B] = "Ann\x02 Smith"
    photo = make_photo(tmp_path / "IMG.JPG", seed=3, size=(96, 64), exif=exif)
    side = str(photo) + ".xmp"
    content = SidecarContent(
        caption="a boat",
        keywords=("boat",),
        token="t1",
        endpoint="http://x/v1/",
        status="completed",
        settled_at="2026-11-24T10:29:59Z",
    )
    assert write_sidecar(side, content, image=str(photo))
    [tags] = json.loads(
        subprocess.run(["exiftool", "-j", "-G1", "-struct", side], capture_output=True, check=True).stdout
    )
    assert tags["XMP-dc:Description"] == "Harbour at dusk"
    assert tags["XMP-dc:Creator"] in ("Ann Smith", ["Ann Smith"])
    raw = Path(side).read_bytes()
    assert b"\x01" not in raw and b"\x1b" not in raw and "\ufffe".encode() not in raw


UNSHARE = ROOT and subprocess.run(["unshare", "--user", "--map-root-user", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not UNSHARE, reason="needs root and user namespaces (unshare --user) to make an unmappable owner")
@pytest.mark.slow
def test_an_owner_this_machine_cannot_map_leaves_the_sidecar_written_with_taggers_owner(tmp_path):
    # The finding: a NAS user id (unmapped here: chown fails with EINVAL) meant the sidecar was never written.
    # In a user namespace that maps only root, uid 4321 shows as the overflow id and cannot be given: as on a NAS.
    photos = tmp_path / "photos"
    for i in range(3):
        make_photo(photos / f"IMG_{i:04d}.JPG", seed=i, size=(96, 64))
    for p in photos.iterdir():  # the folder stays root's: the namespace's root may write only there
        os.chown(p, 4321, 4321)
    os.chmod(tmp_path, 0o755)
    ledger = tmp_path / "l.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    out = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            sys.executable,
            "-P",
            "-m",
            "tagger",
            "--config",
            str(fast_config(tmp_path)),
            "run",
            str(photos),
            "--emulator",
            "--ledger",
            str(ledger),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    sidecars = sorted(photos.glob("*.xmp"))
    assert len(sidecars) == 3
    assert all(os.stat(s).st_uid == 0 for s in sidecars)  # tagger's owner
    assert out.stderr.count("keep tagger's owner") == 1, out.stderr  # said once
