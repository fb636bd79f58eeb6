"""End to end: after `tagger run`, real readers (darktable-cli, exiftool, Exiv2) still show everything the user had."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pillow_heif
import pyexiv2
import pytest
from helpers import make_photo, tagger
from PIL import Image

from tagger.sidecars.readers import READERS, show

pyexiv2.set_log_level(4)

USER = [
    "-XMP-dc:Description=my own espresso",
    "-XMP-lr:HierarchicalSubject=Places|Rome",
    "-XMP-lr:HierarchicalSubject=userkeyword",
    "-XMP-dc:Subject=Rome",
    "-XMP-dc:Subject=userkeyword",
    "-XMP-dc:Title=Morning cup",
    "-XMP-dc:Creator=Ann Example",
    "-XMP-dc:Rights=(c) Ann Example",
    "-XMP-xmp:Rating=4",
]
PHOTO_OWNER = (1234, 2345)


def exiftool(*args: str) -> None:
    subprocess.run(["exiftool", "-q", "-q", "-overwrite_original", *args], check=True)


def tags_of(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-j", "-G1", "-struct", str(path)], capture_output=True, check=True).stdout
    return json.loads(out)[0]


def as_list(value) -> list:
    return value if isinstance(value, list) else [] if value is None else [value]


def darktable_reads(image: Path, work: Path) -> dict:
    """What darktable read from the image and its sidecar, as its export writes it into a JPEG's XMP."""
    work.mkdir(parents=True, exist_ok=True)
    out, config = work / f"{image.name}.out.jpg", work / f"{image.name}.config"
    config.mkdir()  # a fresh configuration per call: no library, no earlier import
    done = subprocess.run(
        ["darktable-cli", str(image), str(out), "--core", "--configdir", str(config), "--library", ":memory:"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HOME": str(work)},
    )
    assert out.exists(), done.stdout + done.stderr
    return tags_of(out)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """JPEG, TIFF and HEIC photos carrying their owner's metadata, and a camera JPEG with boilerplate; captioned."""
    root = tmp_path_factory.mktemp("readers") / "photos"
    jpeg = make_photo(root / "coffee.jpg", seed=1)
    with Image.open(make_photo(root / "tmp.jpg", seed=2)) as img:
        img.save(root / "coffee.tif")
    with Image.open(make_photo(root / "tmp.jpg", seed=3)) as img:
        pillow_heif.from_pillow(img).save(root / "coffee.heic", quality=80)
    (root / "tmp.jpg").unlink()
    for photo in (jpeg, root / "coffee.tif", root / "coffee.heic"):
        exiftool(*USER, str(photo))
    camera = make_photo(root / "P1010001.JPG", seed=4)
    exiftool("-EXIF:ImageDescription=OLYMPUS DIGITAL CAMERA          ", "-EXIF:Make=OLYMPUS", str(camera))
    for photo in root.iterdir():
        os.chown(photo, *PHOTO_OWNER)
    cfg = root.parent / "fast.toml"
    cfg.write_text("[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n")
    done = tagger(
        "--config",
        str(cfg),
        "run",
        str(root),
        "--emulator",
        "--ledger",
        str(root.parent / "ledger.sqlite"),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return root


def caption_of(sidecar: Path) -> tuple[str, list[str]]:
    tags = tags_of(sidecar)
    return tags["XMP-tagger:Caption"], as_list(tags.get("XMP-tagger:AddedSubject"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["coffee.jpg", "coffee.tif", "coffee.heic"])
def test_darktable_shows_the_users_metadata_and_taggers_keywords(library, name):
    photo, sidecar = library / name, library / f"{name}.xmp"
    caption, ours = caption_of(sidecar)
    assert caption and ours
    seen = darktable_reads(photo, library.parent / "dt")
    assert seen["XMP-dc:Description"] == "my own espresso"
    assert seen["XMP-dc:Title"] == "Morning cup"
    assert as_list(seen["XMP-dc:Creator"]) == ["Ann Example"]
    assert seen["XMP-dc:Rights"] == "(c) Ann Example"
    assert seen["XMP-xmp:Rating"] == 4
    subjects = set(as_list(seen["XMP-dc:Subject"]))
    assert {"Places", "Rome", "userkeyword"} <= subjects
    assert set(ours) <= subjects  # CloudSight|word exports as "CloudSight", "word"
    # What `tagger show` predicts is what darktable showed.
    predicted = show(str(photo))["darktable"]
    assert predicted.description == seen["XMP-dc:Description"] and predicted.description_by == "user"
    parts = {part for path in predicted.keywords for part in path.split("|")}
    assert parts == subjects
    assert set(predicted.tagger_keywords) == {f"CloudSight|{k}" for k in ours}
    # Exiv2 parses the sidecar strictly; the new sidecar belongs to the photo's owner.
    with pyexiv2.Image(str(sidecar)) as img:
        strict = img.read_xmp()
    assert strict["Xmp.dc.description"] == {'lang="x-default"': "my own espresso"}
    assert (sidecar.stat().st_uid, sidecar.stat().st_gid) == PHOTO_OWNER


@pytest.mark.slow
def test_darktable_shows_taggers_caption_over_camera_boilerplate(library):
    photo, sidecar = library / "P1010001.JPG", library / "P1010001.JPG.xmp"
    caption, ours = caption_of(sidecar)
    tags = tags_of(sidecar)
    assert tags["XMP-dc:Description"] == caption
    assert tags["XMP-tiff:ImageDescription"] == caption  # Immich reads ImageDescription first
    seen = darktable_reads(photo, library.parent / "dt")
    assert seen["XMP-dc:Description"] == caption
    predicted = show(str(photo))
    assert predicted["darktable"].description == caption and predicted["darktable"].description_by == "tagger"
    assert predicted["Immich"].description == caption
    assert {p for k in predicted["darktable"].keywords for p in k.split("|")} == set(as_list(seen["XMP-dc:Subject"]))


@pytest.mark.slow
def test_show_json_prints_one_object_per_file_with_every_app(library):
    done = tagger("show", "--json", str(library / "coffee.jpg"), str(library / "P1010001.JPG"))
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(library / "coffee.jpg"), str(library / "P1010001.JPG")]
    for row in rows:
        assert set(row) == {"path", *(r.name for r in READERS)}
        assert all({"description", "keywords"} <= set(row[app]) for app in row if app != "path")
    walked = tagger("show", "--json", str(library))
    assert sorted(json.loads(line)["path"] for line in walked.stdout.splitlines()) == sorted(
        str(library / name) for name in ("coffee.jpg", "coffee.tif", "coffee.heic", "P1010001.JPG")
    )
    coffee = rows[0]
    for app in ("darktable", "digiKam", "Lightroom Classic", "Immich"):
        assert coffee[app]["description"] == "my own espresso", app
    # digiKam stops at TagsList and Immich reads it first: tagger seeded it with the user's keywords.
    assert {"Places/Rome", "userkeyword"} <= set(coffee["digiKam"]["keywords"])
    assert {"Places/Rome", "userkeyword"} <= set(coffee["Immich"]["keywords"])
    assert coffee["digiKam"]["tagger_keywords"]


@pytest.mark.slow
def test_strip_deletes_a_sidecar_holding_only_the_copy_of_the_image(library, tmp_path):
    copy = tmp_path / "lib"
    shutil.copytree(library, copy)
    done = tagger("strip", str(copy))
    assert done.returncode == 0, done.stderr
    assert "deleted 4" in done.stdout
    assert sorted(p.name for p in copy.iterdir()) == ["P1010001.JPG", "coffee.heic", "coffee.jpg", "coffee.tif"]


@pytest.mark.slow
def test_show_prints_each_app_marking_yours_and_taggers(library):
    done = tagger("show", str(library / "coffee.jpg"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str(library / "coffee.jpg")
    assert sum("description: my own espresso [yours]" in line for line in lines) == 5  # every app
    _, ours = caption_of(library / "coffee.jpg.xmp")
    assert f"CloudSight|{ours[0]} [tagger]" in done.stdout and "userkeyword," in done.stdout


def shown_lines(stdout: str, photo: str) -> dict[str, str]:
    """``tagger show``'s lines for one photo: "sidecar", and "<app> description" / "<app> keywords"."""
    lines = stdout.splitlines()
    block = lines[lines.index(photo) + 1 :]
    out: dict[str, str] = {}
    app = ""
    for line in block:
        if not line.startswith("  "):
            break
        if line.strip().startswith("sidecar:"):
            out["sidecar"] = line.strip().removeprefix("sidecar:").strip()
            continue
        app = line[2:20].strip() or app
        field, _, value = line[21:].partition(": ")
        out[f"{app} {field}"] = value
    return out


@pytest.mark.slow
def test_show_finds_the_sidecar_a_run_wrote_into_a_sidecar_dir_mirror(tmp_path):
    # Two photos of the same name, one folder apart: the mirror must start at the run's root, or
    # show would read the other photo's sidecar.
    photos = tmp_path / "photos"
    make_photo(photos / "IMG_0001.JPG", seed=1)
    make_photo(photos / "2024" / "IMG_0001.JPG", seed=2)
    cfg = tmp_path / "tagger.toml"
    cfg.write_text(
        '[run]\nledger = "ledger.sqlite"\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n'
        '[output]\nsidecar_dir = "mirror"\nsidecar_naming = "basename"\n'
    )
    done = tagger("--config", str(cfg), "run", str(photos), "--emulator", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    mirror = tmp_path / "mirror"
    assert sorted(str(p.relative_to(mirror)) for p in mirror.rglob("*.xmp")) == ["2024/IMG_0001.xmp", "IMG_0001.xmp"]
    assert not list(photos.rglob("*.xmp"))
    nested, top = photos / "2024" / "IMG_0001.JPG", photos / "IMG_0001.JPG"
    caption, ours = caption_of(mirror / "2024" / "IMG_0001.xmp")
    other, _ = caption_of(mirror / "IMG_0001.xmp")
    assert caption and other and caption != other

    # The ledger (from the config) says which root the photo was captioned under.
    done = tagger("--config", str(cfg), "show", str(nested))
    assert done.returncode == 0, done.stdout + done.stderr
    seen = shown_lines(done.stdout, str(nested))
    assert seen["darktable description"] == f"{caption} [tagger]"
    assert seen["sidecar"] == str(mirror / "2024" / "IMG_0001.xmp")
    assert seen["Immich description"] == f"{caption} [tagger]"
    assert f"CloudSight|{ours[0]} [tagger]" in seen["darktable keywords"]
    assert (
        seen["digiKam description"] == "-"
    )  # digiKam reads IMG_0001.JPG.xmp only, and basename naming wrote IMG_0001.xmp

    # Without a ledger: a folder given to show is taken as the run's root; --json as well.
    flags = ("--sidecar-dir", str(mirror), "--ledger", str(tmp_path / "none.sqlite"))
    done = tagger("show", "--json", *flags, str(photos))
    assert done.returncode == 0, done.stderr
    rows = {json.loads(line)["path"]: json.loads(line) for line in done.stdout.splitlines()}
    assert rows[str(nested)]["Immich"]["description"] == caption
    assert rows[str(top)]["Immich"]["description"] == other
    assert not (tmp_path / "none.sqlite").exists()
    # A photo named alone that no ledger knows: a clear message, not "no sidecar"; --root settles it.
    done = tagger("show", *flags, str(nested))
    assert done.returncode == 1 and "--root" in done.stderr and str(nested) not in done.stdout.splitlines()
    done = tagger("show", *flags, "--root", str(photos), str(nested))
    assert done.returncode == 0, done.stderr
    assert shown_lines(done.stdout, str(nested))["darktable description"] == f"{caption} [tagger]"


DATA = Path(__file__).parents[1] / "data" / "sidecars"


@pytest.mark.slow
@pytest.mark.parametrize("edited", [True, False])
def test_a_sidecar_an_earlier_tagger_created_is_rebuilt_on_the_images_metadata(tmp_path, edited):
    from tagger.sidecars.write import SidecarContent, strip_sidecar, write_sidecar

    photo = make_photo(tmp_path / "coffee.jpg", seed=9)
    exiftool(*USER, str(photo))
    sidecar = tmp_path / "coffee.jpg.xmp"
    shutil.copyfile(DATA / "legacy-created.xmp", sidecar)  # written by the tagger of issue 10's report
    if edited:  # digiKam labelled it since
        exiftool("-XMP-xmp:Label=Blue", str(sidecar))
    hidden = show(str(photo))["darktable"]
    assert hidden.description == "A cup of coffee on a wooden table" and "userkeyword" not in hidden.keywords
    content = SidecarContent(
        "A cup of coffee on a wooden table",
        ("cup", "coffee", "wooden", "table"),
        "tok-legacy",
        "http://127.0.0.1:9/v1/",
        "completed",
        settled_at="2026-11-20T09:00:00Z",
    )
    assert write_sidecar(str(sidecar), content, image=str(photo))
    if edited:
        seen = darktable_reads(photo, tmp_path / "dt")
        assert seen["XMP-dc:Description"] == "my own espresso" and seen["XMP-dc:Title"] == "Morning cup"
        assert seen["XMP-dc:Rights"] == "(c) Ann Example" and seen["XMP-xmp:Rating"] == 4
        assert {"Places", "Rome", "userkeyword", "CloudSight", "coffee"} <= set(as_list(seen["XMP-dc:Subject"]))
    tags = tags_of(sidecar)
    assert tags["XMP-dc:Description"] == "my own espresso"
    assert (tags.get("XMP-xmp:Label") == "Blue") is edited
    assert write_sidecar(str(sidecar), content, image=str(photo)) is False
    assert strip_sidecar(str(sidecar)) == ("updated" if edited else "deleted")
