"""The README's Lightroom route run for real: tagger run, tagger export --profile exiftool, exiftool -csv=.

Photos carrying their own description and keywords in XMP, in IPTC-IIM and
in EXIF must keep them; tagger's keywords are added after the photo's; its
caption goes only where the sidecar merge would put it (a photo without a
description of its own, or one whose description is camera boilerplate).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import fast_config, tagger

CHECKOUT = Path(__file__).resolve().parents[2]
SAMPLES = CHECKOUT / "sample_images"
COLLINS = "Eileen Collins, STS-93 commander, in the orange launch and entry suit"


def exiftool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """exiftool itself (a test that needs it fails without it: no silent skip)."""
    assert shutil.which("exiftool"), "exiftool is required (apt-get install libimage-exiftool-perl)"
    return subprocess.run(["exiftool", *args], capture_output=True, text=True, cwd=cwd, check=False)


def _photos(root: Path) -> None:
    root.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", root / "xmp.jpg")
    shutil.copy(SAMPLES / "rocket.jpg", root / "iptc.jpg")
    shutil.copy(SAMPLES / "chelsea.jpg", root / "exif.jpg")
    shutil.copy(SAMPLES / "clock.jpg", root / "boiler.jpg")
    shutil.copy(SAMPLES / "hubble_deep_field.jpg", root / "plain.jpg")
    steps = [
        (
            "xmp.jpg",
            [
                f"-XMP-dc:Description={COLLINS}",
                "-XMP-dc:Subject=NASA",
                "-XMP-dc:Subject=Eileen Collins",
                "-XMP-dc:Subject=portrait",
                "-XMP-dc:Title=Commander Collins",
                "-XMP-dc:Creator=NASA photographer",
                "-XMP-dc:Rights=Public domain",
            ],
        ),
        (
            "iptc.jpg",
            [
                "-IPTC:Caption-Abstract=Falcon 9 with DSCOVR, pad 40",
                "-IPTC:Keywords=SpaceX",
                "-IPTC:Keywords=launch",
                "-IPTC:By-line=SpaceX",
            ],
        ),
        ("exif.jpg", ["-EXIF:ImageDescription=Chelsea on the red sofa", "-EXIF:Artist=Stefan"]),
        ("boiler.jpg", ["-EXIF:ImageDescription=OLYMPUS DIGITAL CAMERA"]),
    ]
    for name, tags in steps:
        out = exiftool("-overwrite_original", *tags, str(root / name))
        assert out.returncode == 0, out.stderr


def _read(root: Path) -> dict[str, dict]:
    out = exiftool(
        "-j",
        "-G1",
        "-XMP-dc:all",
        "-IPTC:all",
        "-IFD0:ImageDescription",
        "-IFD0:Artist",
        "-XMP-iptcCore:AltTextAccessibility",
        *sorted(str(p) for p in root.glob("*.jpg")),
    )
    assert out.returncode == 0, out.stderr
    return {Path(d["SourceFile"]).name: d for d in json.loads(out.stdout)}


def _list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@pytest.mark.slow
def test_the_readme_exiftool_route_keeps_the_photos_own_description_and_keywords(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    _photos(root)
    before = _read(root)
    assert before["xmp.jpg"]["XMP-dc:Description"] == COLLINS  # the fixture is what it claims
    ledger = str(tmp_path / "l.sqlite")
    run = tagger("--config", str(fast_config(tmp_path)), "run", str(root), "--emulator", "--ledger", ledger)
    assert run.returncode == 0, run.stderr
    # What tagger has for each photo, from its own export.
    mine = tagger("export", "--csv", str(tmp_path / "all.csv"), "--ledger", ledger)
    assert mine.returncode == 0, mine.stderr
    with open(tmp_path / "all.csv", encoding="utf-8", newline="") as f:
        ours = {row["filename"]: row for row in csv.DictReader(f)}
    assert all(ours[n]["status"] == "completed" and ours[n]["caption"] for n in ours), ours
    keywords = {n: [k for k in row["keywords"].split("; ") if k] for n, row in ours.items()}
    assert all(keywords.values()), keywords

    # The README's route, word for word: export, then exiftool -csv= over the folder (run from its parent).
    export = tagger("export", "--profile", "exiftool", "--csv", "captions.csv", "--ledger", ledger, cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    embed = exiftool("-csv=captions.csv", "-sep", "; ", "photos", cwd=tmp_path)
    assert embed.returncode == 0, embed.stderr
    assert "5 image files updated" in embed.stdout + embed.stderr, embed.stdout + embed.stderr
    after = _read(root)

    # XMP: the photo's description, title, creator and rights stay; its keywords first, then tagger's.
    x = after["xmp.jpg"]
    assert x["XMP-dc:Description"] == COLLINS
    assert (x["XMP-dc:Title"], x["XMP-dc:Creator"], x["XMP-dc:Rights"]) == (
        "Commander Collins",
        "NASA photographer",
        "Public domain",
    )
    subject = _list(x["XMP-dc:Subject"])
    assert subject[:3] == ["NASA", "Eileen Collins", "portrait"]
    assert {k.casefold() for k in subject} >= {k.casefold() for k in keywords["xmp.jpg"]}
    # The caption goes where the merge puts it beside a user's description: the alt text, not the description.
    caption = ours["xmp.jpg"]["caption"]
    alt = x["XMP-iptcCore:AltTextAccessibility"]
    assert alt == caption if len(caption) <= 250 else (alt.endswith("…") and caption.startswith(alt[:-1]))

    # IPTC: Caption-Abstract and By-line untouched, IPTC and XMP keywords both the photo's plus tagger's.
    i = after["iptc.jpg"]
    assert i["IPTC:Caption-Abstract"] == "Falcon 9 with DSCOVR, pad 40"
    assert i["IPTC:By-line"] == "SpaceX"
    assert "XMP-dc:Description" not in i  # the IPTC caption is the photo's description: nothing written over it
    assert _list(i["IPTC:Keywords"])[:2] == ["SpaceX", "launch"]
    assert _list(i["XMP-dc:Subject"])[:2] == ["SpaceX", "launch"]
    assert {k.casefold() for k in _list(i["IPTC:Keywords"])} >= {k.casefold() for k in keywords["iptc.jpg"]}

    # EXIF: the user's ImageDescription is the description: it stays and no other description appears.
    e = after["exif.jpg"]
    assert e["IFD0:ImageDescription"] == "Chelsea on the red sofa"
    assert e["IFD0:Artist"] == "Stefan"
    assert "XMP-dc:Description" not in e

    # Camera boilerplate is not a description: the caption replaces it, as in a sidecar.
    b = after["boiler.jpg"]
    assert b["XMP-dc:Description"] == ours["boiler.jpg"]["caption"]
    assert b["IFD0:ImageDescription"] == ours["boiler.jpg"]["caption"]

    # A photo with nothing of its own gets tagger's caption and keywords.
    p = after["plain.jpg"]
    assert p["XMP-dc:Description"] == ours["plain.jpg"]["caption"]
    assert _list(p["XMP-dc:Subject"]) == keywords["plain.jpg"]

    # A second export and import changes nothing more (no duplicated keywords).
    again = tagger("export", "--profile", "exiftool", "--csv", "captions.csv", "--ledger", ledger, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    embed = exiftool("-csv=captions.csv", "-sep", "; ", "-overwrite_original", "photos", cwd=tmp_path)
    assert embed.returncode == 0, embed.stderr
    assert _read(root) == after
