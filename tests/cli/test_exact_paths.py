"""Every output names the file that exists, a name that is not UTF-8 included (one reversible spelling).

A Latin-1 name, ``caf\\xe9 cr\\xe8me.jpg`` (bytes not valid UTF-8), goes
through a real run and comes out in every CSV profile, JSONL, the exiftool
profile (exiftool must find the file), the contact sheet (its preview shown,
in headless Chromium) and ``tagger show``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from browser import visible_cards, wait_visible_thumbs
from helpers import fast_config, make_photo, tagger
from hypothesis import given
from hypothesis import strategies as st

from tagger.display import display, undisplay

LATIN1 = b"caf\xe9 cr\xe8me.jpg"
SPELLED = "caf\\xe9 cr\\xe8me.jpg"


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\x00" not in b))
def test_every_name_has_one_spelling_that_gives_it_back(name: bytes) -> None:
    assert undisplay(display(name)) == name


@given(st.text(min_size=1, max_size=30))
def test_a_utf8_name_is_shown_as_it_is_unless_it_looks_escaped(text: str) -> None:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates: not a UTF-8 name
    shown = display(raw)
    assert undisplay(shown) == raw
    if "\\" not in text:
        assert shown == text


def test_spellings_never_collide() -> None:
    names = [LATIN1, SPELLED.encode(), b"caf\\\\xe9.jpg", b"a\\b.jpg", "café.jpg".encode()]
    shown = [display(n) for n in names]
    assert len(set(shown)) == len(names)
    assert shown[0] == SPELLED and shown[3] == "a\\b.jpg" and shown[4] == "café.jpg"
    assert [undisplay(s) for s in shown] == names


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A captioned tree holding a Latin-1 name in a subfolder; returns (root, ledger)."""
    root = tmp_path / "photos"
    make_photo(root / "broken" / "plain.jpg", 1, size=(320, 240))
    folder = os.fsencode(root / "broken")
    make_photo(root / "broken" / "tmp.jpg", 2, size=(320, 240))
    os.rename(os.path.join(folder, b"tmp.jpg"), os.path.join(folder, LATIN1))
    ledger = tmp_path / "l.sqlite"
    out = tagger("--config", str(fast_config(tmp_path)), "run", str(root), "--emulator", "--ledger", str(ledger))
    assert out.returncode == 0, out.stderr
    return root, ledger


def _exists(root: Path, shown: str) -> bool:
    return os.path.isfile(os.path.join(os.fsencode(root), undisplay(shown)))


def _rows(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    with open(path, encoding=encoding, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_every_csv_profile_and_jsonl_name_the_file(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, ledger = tree
    out = {}
    for profile in ("default", "excel", "resourcespace", "canto", "aem"):
        dest = tmp_path / f"{profile}.csv"
        done = tagger("export", "--csv", str(dest), "--profile", profile, "--ledger", str(ledger))
        assert done.returncode == 0, done.stderr
        out[profile] = _rows(dest, "utf-8-sig")
    for profile in ("default", "excel"):
        rows = {r["filename"]: r for r in out[profile]}
        assert set(rows) == {"plain.jpg", SPELLED}
        row = rows[SPELLED]
        assert row["path"] == "broken/" + SPELLED  # never broken/caf/xe9 cr/xe8me.jpg
        assert _exists(root, row["path"]) and os.path.isfile(undisplay(row["absolute_path"]))
    rs = {r["Original filename"]: r for r in out["resourcespace"]}
    assert _exists(root, rs[SPELLED]["Path"])
    canto = {r["File Name"]: r for r in out["canto"]}
    assert _exists(root, canto[SPELLED]["Path"])
    aem = [r["assetPath"] for r in out["aem"]]
    assert "/content/dam/broken/" + SPELLED in aem
    jsonl = tagger("export", "--csv", "-", "--format", "jsonl", "--ledger", str(ledger))
    records = {json.loads(line)["filename"]: json.loads(line) for line in jsonl.stdout.splitlines()}
    assert records[SPELLED]["relpath"] == "broken/" + SPELLED
    assert os.path.isfile(undisplay(records[SPELLED]["path"]))


@pytest.mark.slow
def test_exiftool_finds_the_file_named_in_latin1(tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, ledger = tree
    done = tagger("export", "--profile", "exiftool", "--csv", str(tmp_path / "c.csv"), "--ledger", str(ledger))
    assert done.returncode == 0, done.stderr
    assert os.path.join(os.fsencode(root), b"broken", LATIN1) in (tmp_path / "c.csv").read_bytes()
    run = subprocess.run(
        ["exiftool", "-csv=" + str(tmp_path / "c.csv"), "-sep", "; ", "-overwrite_original", "-r", str(root)],
        capture_output=True,
    )
    assert run.returncode == 0, run.stderr
    assert b"2 image files updated" in run.stdout + run.stderr, run.stdout + run.stderr
    target = os.path.join(os.fsencode(root), b"broken", LATIN1)
    read = subprocess.run([b"exiftool", b"-j", b"-XMP-dc:Description", target], capture_output=True, check=True)
    assert json.loads(read.stdout)[0]["Description"]


@pytest.mark.slow
def test_the_contact_sheet_shows_its_preview(browser, tree: tuple[Path, Path], tmp_path: Path) -> None:
    root, ledger = tree
    dest = tmp_path / "sheet.html"
    done = tagger("report", "--html", str(dest), "--ledger", str(ledger))
    assert done.returncode == 0, done.stderr
    browser.get(dest.as_uri())
    assert sorted(visible_cards(browser)) == sorted(["plain.jpg", SPELLED])
    assert wait_visible_thumbs(browser) == 2
    placeholders = browser.execute_script("return document.querySelectorAll('.card .ph').length")
    assert placeholders == 0
    rels = browser.execute_script("return Array.from(document.querySelectorAll('.card .rel')).map(e => e.textContent)")
    assert "broken/" + SPELLED in rels


@pytest.mark.slow
def test_show_names_the_file(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    out = tagger("show", str(root / "broken"), "--json")
    assert out.returncode == 0, out.stderr
    paths = [json.loads(line)["path"] for line in out.stdout.splitlines()]
    assert sorted(paths) == sorted([str(root / "broken" / SPELLED), str(root / "broken" / "plain.jpg")])
    assert all(os.path.isfile(undisplay(p)) for p in paths)
    text = tagger("show", str(root / "broken"))
    assert text.returncode == 0, text.stderr
    assert str(root / "broken" / SPELLED) in text.stdout.splitlines()
    assert f"sidecar:           {root / 'broken' / SPELLED}.xmp" in text.stdout
