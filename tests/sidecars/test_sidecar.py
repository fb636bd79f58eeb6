"""Tests for tagger.sidecars.write: fresh and merged sidecars read back by exiftool and Exiv2, naming, strip."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from xml.sax.saxutils import escape

import pyexiv2
import pytest
from defusedxml.ElementTree import fromstring
from helpers import make_photo
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagger.keywords.derive import clean_keywords
from tagger.sidecars import write as sidecar
from tagger.sidecars.write import SidecarContent, SidecarError, sidecar_path_for, strip_sidecar, write_sidecar

DATA = Path(__file__).parents[1] / "data" / "sidecars"
NOW = datetime(2026, 11, 24, 10, 30, 0, tzinfo=UTC)
OURS = (
    "XMP-dc:Description",
    "XMP-dc:Subject",
    "XMP-lr:HierarchicalSubject",
    "XMP-digiKam:TagsList",
    "XMP-iptcCore:AltTextAccessibility",
    "XMP-xmp:MetadataDate",
    "XMP-dc:Description-x-default",
)

pyexiv2.set_log_level(4)  # its conversion warnings are noise; parse errors still raise


def content(caption: str = "A red barn beside a wheat field", keywords=("red", "barn", "wheat", "field"), **kw):
    """A completed result with sensible defaults."""
    kw.setdefault("token", "tok-1")
    kw.setdefault("endpoint", "http://127.0.0.1:9/v1/")
    kw.setdefault("status", "completed")
    kw.setdefault("settled_at", "2026-11-24T10:29:59Z")
    return SidecarContent(caption=caption, keywords=tuple(keywords), **kw)


def exif(path: Path | str) -> dict:
    """exiftool's reading of the file, without the file-system and tool groups."""
    out = subprocess.run(["exiftool", "-j", "-struct", "-G1", "-a", str(path)], capture_output=True, check=True).stdout
    [tags] = json.loads(out)
    assert not any(k.endswith((":Warning", ":Error")) for k in tags), tags
    return {k: v for k, v in tags.items() if k.split(":")[0] not in ("System", "ExifTool", "File", "SourceFile")}


def exiv2(path: Path | str) -> dict:
    """Exiv2's strict reading (raises on a packet it rejects)."""
    with pyexiv2.Image(str(path)) as img:
        return img.read_xmp()


def others(tags: dict) -> dict:
    """Everything but the fields tagger manages."""
    return {k: v for k, v in tags.items() if k not in OURS and not k.startswith("XMP-tagger:")}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def copy_fixture(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(DATA / name, target)
    return target


# --- fresh sidecars ------------------------------------------------------------------------------


def test_fresh_sidecar_reads_back_everywhere(tmp_path):
    path = tmp_path / "IMG_0001.JPG.xmp"
    assert write_sidecar(str(path), content(flags=("blurry",)), now=NOW) is True
    raw = path.read_bytes()
    assert raw.startswith(b'<?xpacket begin="\xef\xbb\xbf"')  # U+FEFF inside begin, no BOM before it
    tags = exif(path)
    assert tags["XMP-dc:Description"] == "A red barn beside a wheat field"
    assert tags["XMP-iptcCore:AltTextAccessibility"] == "A red barn beside a wheat field"
    assert tags["XMP-dc:Subject"] == ["red", "barn", "wheat", "field"]
    assert tags["XMP-lr:HierarchicalSubject"] == [
        "CloudSight|red",
        "CloudSight|barn",
        "CloudSight|wheat",
        "CloudSight|field",
    ]
    assert tags["XMP-digiKam:TagsList"] == ["CloudSight/red", "CloudSight/barn", "CloudSight/wheat", "CloudSight/field"]
    assert tags["XMP-xmp:MetadataDate"] == "2026:11:24 10:30:00Z"
    assert "XMP-xmp:CreatorTool" not in tags
    assert tags["XMP-tagger:Token"] == "tok-1"
    assert tags["XMP-tagger:Endpoint"] == "http://127.0.0.1:9/v1/"
    assert tags["XMP-tagger:Status"] == "completed"
    assert as_list(tags["XMP-tagger:Flags"]) == ["blurry"]
    assert tags["XMP-tagger:CreatedFile"] is True
    strict = exiv2(path)
    assert strict["Xmp.dc.description"] == {'lang="x-default"': "A red barn beside a wheat field"}
    assert strict["Xmp.digiKam.TagsList"][0] == "CloudSight/red"
    assert strict["Xmp.tagger.date"] == "2026-11-24T10:29:59Z"
    assert b"ns0:" not in raw


def test_new_file_permissions_follow_umask_and_existing_bits_are_kept(tmp_path):
    fresh = tmp_path / "a.xmp"
    old = os.umask(0o022)
    try:
        write_sidecar(str(fresh), content())
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    kept = copy_fixture(tmp_path, "digikam.xmp")
    os.chmod(kept, 0o640)
    assert write_sidecar(str(kept), content())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_hierarchy_parent_is_configurable_and_may_nest(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content(keywords=("barn",)), hierarchy_parent="AI|Cloud/Sight")
    tags = exif(path)
    assert as_list(tags["XMP-lr:HierarchicalSubject"]) == ["AI|Cloud|Sight|barn"]
    assert as_list(tags["XMP-digiKam:TagsList"]) == ["AI/Cloud/Sight/barn"]


def test_alt_text_is_cut_at_a_word_boundary(tmp_path):
    caption = " ".join(["wheat"] * 60)  # 359 characters
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content(caption=caption))
    tags = exif(path)
    alt = tags["XMP-iptcCore:AltTextAccessibility"]
    assert len(alt) <= 250 and caption.startswith(alt) and alt.endswith("wheat") and len(alt) > 240
    assert tags["XMP-dc:Description"] == caption


# --- merging -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_merge_into_exiftool_sidecar(tmp_path):
    path = tmp_path / "IMG_1.xmp"
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-o",
            str(path),
            "-XMP-dc:Subject=user",
            "-XMP-dc:Subject=Barn",
            "-XMP:Rating=4",
            "-XMP-dc:Creator=Ann",
            "-XMP-xmp:CreatorTool=Foo",
            "-XMP-lr:HierarchicalSubject=Places|Farm",
            "-XMP-photoshop:Headline=Harvest",
        ],
        check=True,
    )
    before = exif(path)
    assert write_sidecar(str(path), content(), now=NOW)
    after = exif(path)
    assert others(after) == others(before)
    assert after["XMP-xmp:CreatorTool"] == "Foo"
    assert after["XMP-dc:Subject"] == ["user", "Barn", "red", "wheat", "field"]  # no second barn
    assert after["XMP-lr:HierarchicalSubject"][0] == "Places|Farm"
    assert after["XMP-dc:Description"] == "A red barn beside a wheat field"
    assert after["XMP-tagger:CreatedFile"] is False
    text = path.read_text("utf-8")
    for prop in ("<dc:subject>", "<lr:hierarchicalSubject>", "<dc:description>", "<xmp:MetadataDate"):
        assert text.count(prop) == 1, prop
    exiv2(path)


@pytest.mark.slow
def test_merge_into_darktable_sidecar(tmp_path):
    path = copy_fixture(tmp_path, "darktable.xmp")
    before, strict_before = exif(path), exiv2(path)
    assert write_sidecar(str(path), content(), now=NOW)
    text = path.read_text("utf-8")
    assert 'xmlns:darktable="http://darktable.sf.net/"' in text
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    after = exif(path)
    assert others(after) == others(before)  # history, rating attribute, title...
    assert after["XMP-darktable:History"][1]["Multi_name"] == "& basic"
    assert after["XMP-dc:Subject"] == ["holiday", "Barn", "red", "wheat", "field"]
    assert after["XMP-lr:HierarchicalSubject"][:2] == ["darktable|format|cr3", "Places|Farm"]
    strict_after = exiv2(path)
    assert {k: v for k, v in strict_after.items() if k.startswith("Xmp.darktable")} == {
        k: v for k, v in strict_before.items() if k.startswith("Xmp.darktable")
    }


@pytest.mark.slow
def test_merge_into_digikam_sidecar_keeps_languages_and_updates_attribute_date(tmp_path):
    path = copy_fixture(tmp_path, "digikam.xmp")
    before = exif(path)
    assert write_sidecar(str(path), content(), now=NOW)
    after = exif(path)
    assert {
        k: v for k, v in others(after).items() if k != "XMP-tagger:Caption" and not k.startswith("XMP-tagger:Captions")
    } == others(before)
    # The user's description exists only in de-DE and fr-FR: no x-default may shadow it.
    assert "XMP-dc:Description" not in after
    assert after["XMP-dc:Description-de-DE"] == "Eine rote Scheune"
    assert after["XMP-dc:Description-fr-FR"] == "Une grange rouge"
    assert after["XMP-tagger:Caption"] == "A red barn beside a wheat field"
    assert after["XMP-xmp:MetadataDate"] == "2026:11:24 10:30:00Z"
    assert after["XMP-xmp:CreatorTool"] == "digiKam-8.2.0"
    assert after["XMP-digiKam:TagsList"][:2] == ["People/Anna", "barn"]
    assert "CloudSight/barn" in after["XMP-digiKam:TagsList"]
    assert after["XMP-dc:Subject"] == ["Anna", "barn", "red", "wheat", "field"]
    assert sorted(exiv2(path)["Xmp.dc.description"]) == ['lang="de-DE"', 'lang="fr-FR"']
    text = path.read_text("utf-8")
    assert text.count("MetadataDate") == 1  # the attribute updated where it stood, not a second copy


@pytest.mark.slow
def test_user_caption_is_never_replaced(tmp_path):
    path = tmp_path / "a.xmp"
    subprocess.run(["exiftool", "-q", "-o", str(path), "-XMP-dc:Description=My own words"], check=True)
    write_sidecar(str(path), content())
    tags = exif(path)
    assert tags["XMP-dc:Description"] == "My own words"
    assert tags["XMP-tagger:Caption"] == "A red barn beside a wheat field"
    assert not any(k.startswith("XMP-tagger:WroteDescription") for k in tags)


# --- re-runs -------------------------------------------------------------------------------------


def test_second_write_changes_nothing(tmp_path):
    path = copy_fixture(tmp_path, "darktable.xmp")
    assert write_sidecar(str(path), content(), now=NOW)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    data = path.read_bytes()
    assert write_sidecar(str(path), content(), now=datetime(2030, 1, 1, tzinfo=UTC)) is False
    assert path.read_bytes() == data
    assert path.stat().st_mtime_ns == 1_000_000_000_000_000_000


def test_new_caption_replaces_only_our_keywords(tmp_path):
    path = copy_fixture(tmp_path, "digikam.xmp")
    write_sidecar(str(path), content())
    assert write_sidecar(str(path), content("A grey cat on a sofa", ("grey", "cat", "sofa"), token="tok-2"))
    tags = exif(path)
    assert "XMP-dc:Description" not in tags  # the user's de-DE/fr-FR description stays the only one
    assert tags["XMP-tagger:Caption"] == "A grey cat on a sofa"
    assert tags["XMP-dc:Subject"] == ["Anna", "barn", "grey", "cat", "sofa"]
    assert tags["XMP-lr:HierarchicalSubject"] == [
        "People|Anna",
        "barn",
        "CloudSight|grey",
        "CloudSight|cat",
        "CloudSight|sofa",
    ]
    assert tags["XMP-digiKam:TagsList"] == [
        "People/Anna",
        "barn",
        "CloudSight/grey",
        "CloudSight/cat",
        "CloudSight/sofa",
    ]
    assert tags["XMP-tagger:Token"] == "tok-2"


@pytest.mark.slow
def test_caption_the_user_edited_after_us_is_kept_on_rerun(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content())
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Description=Edited", str(path)], check=True)
    write_sidecar(str(path), content("A grey cat", ("cat",), token="tok-2"))
    tags = exif(path)
    assert tags["XMP-dc:Description"] == "Edited"
    assert tags["XMP-iptcCore:AltTextAccessibility"] == "A grey cat"


# --- escaping and bad input ----------------------------------------------------------------------


def test_escaping_control_and_astral_characters(tmp_path):
    path = tmp_path / "a.xmp"
    caption = "Tom & Jerry <b>\"quoted\" 'single'</b>\x00\x07\x0b\x1f\ufffe cow \U0001f404 caf\u0065\u0301 \udce9!"
    write_sidecar(str(path), content(caption, ("a&b", "<tag>", "\U0001f404", "x\x01y")))
    expected = "Tom & Jerry <b>\"quoted\" 'single'</b> cow \U0001f404 caf\u00e9 !"
    tags = exif(path)
    assert tags["XMP-dc:Description"] == expected
    assert tags["XMP-dc:Subject"] == ["a&b", "<tag>", "\U0001f404", "x y"]
    assert exiv2(path)["Xmp.dc.description"] == {'lang="x-default"': expected}


@pytest.mark.parametrize(
    "body",
    [
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        b"<rdf:Description rdf:about=''><dc:title xmlns:dc='http://purl.org/dc/elements/1.1/'>A & B</dc:title>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>",
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><x:xmpmeta xmlns:x='adobe:ns:meta/'>&b;</x:xmpmeta>",
        b"<html><body>not xmp</body></html>",
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>",
        b"\xff\xfe<\x00x\x00",
    ],
)
def test_unparseable_sidecar_raises_and_stays_untouched(tmp_path, body):
    path = tmp_path / "bad.xmp"
    path.write_bytes(body)
    os.utime(path, ns=(10**18, 10**18))
    with pytest.raises(SidecarError, match="bad.xmp"):
        write_sidecar(str(path), content())
    with pytest.raises(SidecarError):
        strip_sidecar(str(path))
    assert path.read_bytes() == body and path.stat().st_mtime_ns == 10**18


def test_unwritable_target_raises_sidecar_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SidecarError, match="file/a.xmp: cannot"):
        write_sidecar(str(blocker / "a.xmp"), content())
    assert blocker.read_text() == "not a folder"


def test_empty_existing_file_is_filled_and_not_claimed(tmp_path):
    path = tmp_path / "a.xmp"
    path.write_bytes(b"")
    assert write_sidecar(str(path), content())
    assert exif(path)["XMP-tagger:CreatedFile"] is False
    assert strip_sidecar(str(path)) == "updated"
    assert path.exists()


def test_symlinked_sidecar_is_left_alone(tmp_path):
    # Issue 18: a sidecar that is a symbolic link is never written through (it was before), nor cut.
    real = copy_fixture(tmp_path, "digikam.xmp")
    before = real.read_bytes()
    link = tmp_path / "IMG.JPG.xmp"
    link.symlink_to(real.name)
    with pytest.raises(SidecarError, match="IMG.JPG.xmp: is a symbolic link; left alone"):
        write_sidecar(str(link), content())
    assert link.is_symlink() and os.readlink(link) == real.name
    assert real.read_bytes() == before
    with pytest.raises(SidecarError, match="is a symbolic link; left alone"):
        strip_sidecar(str(link))
    assert real.read_bytes() == before


def test_dangling_symlinked_sidecar_creates_nothing(tmp_path):
    # Issue 18: the write used to create the link's target (as root: anywhere, given to the photo's owner).
    elsewhere = tmp_path / "root-only"
    elsewhere.mkdir(mode=0o700)
    photos = tmp_path / "photos"
    photos.mkdir()
    link = photos / "IMG.JPG.xmp"
    link.symlink_to(elsewhere / "planted.xmp")
    with pytest.raises(SidecarError, match="is a symbolic link; left alone"):
        write_sidecar(str(link), content())
    assert not (elsewhere / "planted.xmp").exists()
    assert sorted(os.listdir(photos)) == ["IMG.JPG.xmp"]


def test_link_planted_just_before_the_rename_is_not_cut(tmp_path, monkeypatch):
    # The check is repeated at the rename: a link planted while tagger encoded is left, nothing is written.
    path = tmp_path / "IMG.JPG.xmp"
    elsewhere = tmp_path / "elsewhere.xmp"

    def encode_then_plant(packet, p):
        path.symlink_to(elsewhere)
        return real_encode(packet, p)

    real_encode = sidecar._encode
    monkeypatch.setattr(sidecar, "_encode", encode_then_plant)
    with pytest.raises(SidecarError, match="is a symbolic link; left alone"):
        write_sidecar(str(path), content())
    assert path.is_symlink() and not elsewhere.exists()
    assert sorted(os.listdir(tmp_path)) == ["IMG.JPG.xmp"]  # no temporary file left either


def test_new_sidecar_is_never_more_readable_than_its_photo(tmp_path):
    # Issue 18: the sidecar copies the photo's metadata (GPS included): a private photo gets a private sidecar.
    private = make_photo(tmp_path / "private.jpg", 1, (64, 48))
    os.chmod(private, 0o600)
    shared = make_photo(tmp_path / "shared.jpg", 2, (64, 48))
    os.chmod(shared, 0o644)
    group = make_photo(tmp_path / "group.jpg", 3, (64, 48))
    os.chmod(group, 0o640)
    old = os.umask(0o022)
    try:
        for photo in (private, shared, group):
            write_sidecar(str(photo) + ".xmp", content(), image=str(photo))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(str(private) + ".xmp").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(shared) + ".xmp").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(group) + ".xmp").st_mode) == 0o640


def test_long_name_gets_a_short_temporary_name(tmp_path):
    # Issue 18: a 234-251 byte name made ".<name>.xmp.<12 hex>.tmp" pass 255 bytes: the sidecar was never written.
    for length in (234, 240, 251):
        photo = make_photo(tmp_path / ("p" * (length - 4) + ".jpg"), length, (64, 48))
        assert len(photo.name.encode()) == length
        target = str(photo) + ".xmp"
        assert write_sidecar(target, content(), image=str(photo))
        assert exif(target)["XMP-tagger:Token"] == "tok-1"
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.slow
def test_naive_now_is_taken_as_utc_and_other_zones_converted(tmp_path):
    a, b = tmp_path / "a.xmp", tmp_path / "b.xmp"
    write_sidecar(str(a), content(), now=datetime(2026, 1, 2, 3, 4, 5, 999))
    east = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    write_sidecar(str(b), content(), now=east)
    assert exif(a)["XMP-xmp:MetadataDate"] == exif(b)["XMP-xmp:MetadataDate"] == "2026:01:02 03:04:05Z"


def test_rdf_about_of_existing_descriptions_is_reused(tmp_path):
    path = tmp_path / "a.xmp"
    path.write_text(
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        "<rdf:Description rdf:about='uuid:faf5bdd5-ba3d-11da-ad31-d33d75182f1b' xmlns:xmp='http://ns.adobe.com/xap/1.0/'"
        " xmp:Rating='1'/></rdf:RDF></x:xmpmeta>",
        "utf-8",
    )
    write_sidecar(str(path), content())
    assert path.read_text("utf-8").count('rdf:about="uuid:faf5bdd5-ba3d-11da-ad31-d33d75182f1b"') == 2
    assert exiv2(path)["Xmp.xmp.Rating"] == "1"


def test_changed_hierarchy_parent_replaces_our_old_paths(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content(keywords=("barn",)))
    write_sidecar(str(path), content(keywords=("barn",)), hierarchy_parent="AI")
    tags = exif(path)
    assert as_list(tags["XMP-lr:HierarchicalSubject"]) == ["AI|barn"]
    assert as_list(tags["XMP-digiKam:TagsList"]) == ["AI/barn"]


# --- strip ---------------------------------------------------------------------------------------


def test_strip_deletes_a_file_tagger_created(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content())
    assert strip_sidecar(str(path)) == "deleted"
    assert not path.exists()
    assert strip_sidecar(str(path)) == "absent"


@pytest.mark.slow
def test_strip_keeps_a_created_file_the_user_added_to(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content())
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP:Rating=5", "-XMP-dc:Subject+=mine", str(path)], check=True
    )
    assert strip_sidecar(str(path)) == "updated"
    tags = exif(path)
    assert tags["XMP-xmp:Rating"] == 5
    assert as_list(tags["XMP-dc:Subject"]) == ["mine"]
    assert not any(k.startswith("XMP-tagger:") for k in tags)
    assert "XMP-dc:Description" not in tags and "XMP-digiKam:TagsList" not in tags
    assert "tagger.invalid" not in path.read_text("utf-8")


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["darktable.xmp", "digikam.xmp"])
def test_strip_restores_the_users_data(tmp_path, fixture):
    path = copy_fixture(tmp_path, fixture)
    before = exif(path)
    write_sidecar(str(path), content(), now=NOW)
    write_sidecar(str(path), content("A grey cat", ("grey", "cat", "barn")), now=NOW)
    assert strip_sidecar(str(path)) == "updated"
    after = exif(path)
    assert {k: v for k, v in after.items() if k != "XMP-xmp:MetadataDate"} == {
        k: v for k, v in before.items() if k != "XMP-xmp:MetadataDate"
    }
    exiv2(path)
    if fixture == "darktable.xmp":
        assert 'xmlns:darktable="http://darktable.sf.net/"' in path.read_text("utf-8")
    assert strip_sidecar(str(path)) == "unchanged"


@pytest.mark.slow
def test_strip_keeps_a_caption_the_user_rewrote(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content())
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-dc:Description=Mine now", str(path)], check=True)
    assert strip_sidecar(str(path)) == "updated"
    tags = exif(path)
    assert tags["XMP-dc:Description"] == "Mine now"
    assert "XMP-dc:Subject" not in tags


def test_strip_leaves_foreign_sidecars_byte_identical(tmp_path):
    path = copy_fixture(tmp_path, "digikam.xmp")
    assert strip_sidecar(str(path)) == "unchanged"
    assert path.read_bytes() == (DATA / "digikam.xmp").read_bytes()


# --- naming --------------------------------------------------------------------------------------


def touch(folder: Path, *names: str | bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        with open(os.path.join(os.fsencode(folder), os.fsencode(name)), "wb"):
            pass


@pytest.fixture(autouse=True)
def fresh_listings():
    sidecar.clear_listing_cache()
    yield
    sidecar.clear_listing_cache()


def test_full_and_basename_forms(tmp_path):
    touch(tmp_path, "IMG_0001.JPG")
    image = str(tmp_path / "IMG_0001.JPG")
    assert sidecar_path_for(image) == str(tmp_path / "IMG_0001.JPG.xmp")
    assert sidecar_path_for(image, naming="basename") == str(tmp_path / "IMG_0001.xmp")
    with pytest.raises(ValueError):
        sidecar_path_for(image, naming="short")


def test_basename_collision_falls_back_to_full_with_a_warning(tmp_path, caplog):
    touch(tmp_path, "IMG_1.JPG", "IMG_1.PNG", "IMG_1.txt")
    with caplog.at_level(logging.WARNING, logger="tagger.sidecars.write"):
        assert sidecar_path_for(str(tmp_path / "IMG_1.JPG"), naming="basename") == str(tmp_path / "IMG_1.JPG.xmp")
    assert "IMG_1.PNG" not in caplog.text and "IMG_1.JPG.xmp" in caplog.text


def test_raw_and_jpeg_pair_share_a_basename_sidecar(tmp_path):
    touch(tmp_path, "IMG_1.CR3", "IMG_1.JPG", "IMG_2.NEF", "IMG_2.JPG", "IMG_2.TIF")
    for name in ("IMG_1.CR3", "IMG_1.JPG"):
        assert sidecar_path_for(str(tmp_path / name), naming="basename") == str(tmp_path / "IMG_1.xmp")
    # Three images on one base name: nobody may share.
    assert sidecar_path_for(str(tmp_path / "IMG_2.JPG"), naming="basename") == str(tmp_path / "IMG_2.JPG.xmp")


def test_an_existing_sidecar_of_the_other_form_is_used(tmp_path):
    touch(tmp_path, "A.JPG", "A.xmp", "B.JPG", "B.JPG.xmp", "C.JPG", "C.PNG", "C.xmp")
    assert sidecar_path_for(str(tmp_path / "A.JPG")) == str(tmp_path / "A.xmp")
    assert sidecar_path_for(str(tmp_path / "B.JPG"), naming="basename") == str(tmp_path / "B.JPG.xmp")
    # C.xmp is ambiguous between C.JPG and C.PNG: it is not this image's.
    assert sidecar_path_for(str(tmp_path / "C.JPG")) == str(tmp_path / "C.JPG.xmp")


def test_sidecar_dir_mirrors_the_tree(tmp_path):
    root, mirror = tmp_path / "photos", tmp_path / "sidecars"
    touch(root / "2024" / "farm", "IMG_1.JPG")
    image = str(root / "2024" / "farm" / "IMG_1.JPG")
    target = sidecar_path_for(image, sidecar_dir=str(mirror), root=str(root))
    assert target == str(mirror / "2024" / "farm" / "IMG_1.JPG.xmp")
    assert write_sidecar(target, content())
    assert exif(target)["XMP-dc:Subject"] == ["red", "barn", "wheat", "field"]
    assert sorted(os.listdir(root / "2024" / "farm")) == ["IMG_1.JPG"]
    with pytest.raises(ValueError):
        sidecar_path_for(image, sidecar_dir=str(mirror))
    with pytest.raises(ValueError):
        sidecar_path_for(str(tmp_path / "elsewhere" / "x.jpg"), sidecar_dir=str(mirror), root=str(root))


def test_non_utf8_file_names(tmp_path, caplog):
    touch(tmp_path, b"caf\xe9.jpg", b"caf\xe9.png")
    image = os.path.join(str(tmp_path), os.fsdecode(b"caf\xe9.jpg"))
    with caplog.at_level(logging.WARNING, logger="tagger.sidecars.write"):
        target = sidecar_path_for(image, naming="basename")
    assert os.fsencode(target) == os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg.xmp"
    assert "caf\\xe9.jpg" in caplog.text
    assert write_sidecar(target, content())
    assert os.path.exists(os.fsencode(target))
    assert strip_sidecar(target) == "deleted"


@pytest.mark.slow
def test_a_folder_is_listed_once(tmp_path, monkeypatch):
    names = [f"IMG_{i:05d}.JPG" for i in range(3000)]
    touch(tmp_path, *names)
    calls = []
    real = os.listdir

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(os, "listdir", counting)
    for name in names:
        sidecar_path_for(str(tmp_path / name), naming="basename")
    assert calls == [str(tmp_path)]


# --- properties ----------------------------------------------------------------------------------

xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from("&<>\"' |/\x00\x07\r\n"), max_size=40
)
user_keyword = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff")
    | st.sampled_from("&<>\"' "),
    min_size=1,
    max_size=12,
)


def seed(path: Path, subjects: list[str]) -> None:
    """An exiftool-style sidecar holding the user's keywords in all three fields and a rating."""
    lis = "".join(f"<rdf:li>{escape(s)}</rdf:li>" for s in subjects)
    path.write_text(
        "<?xpacket begin='\ufeff' id='W5M0MpCehiHzreSzNTczkc9d'?>\n"
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>\n"
        f" <rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:subject><rdf:Bag>{lis}"
        "</rdf:Bag></dc:subject></rdf:Description>\n"
        " <rdf:Description rdf:about='' xmlns:xmp='http://ns.adobe.com/xap/1.0/' xmp:Rating='2'"
        f" xmlns:digiKam='http://www.digikam.org/ns/1.0/'><digiKam:TagsList><rdf:Seq>{lis}</rdf:Seq>"
        "</digiKam:TagsList></rdf:Description>\n</rdf:RDF></x:xmpmeta>\n<?xpacket end='w'?>",
        "utf-8",
    )


def expected_caption(caption: str) -> str:
    """The caption as it must read back: no controls but tab/LF, LF line breaks, NFC, trimmed."""
    caption = caption.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(
        c
        for c in caption
        if c in "\t\n"
        or 0x20 <= ord(c) < 0x7F
        or 0xA0 <= ord(c) <= 0xD7FF
        or 0xE000 <= ord(c) <= 0xFFFD
        or ord(c) >= 0x10000
    )
    return unicodedata.normalize("NFC", kept).strip()


def check_merge(subject: list[str], tags: list[str], user: list[str], ours: list[str]) -> None:
    """The user's values first and intact, then ours that they did not already have."""

    def key(value: str) -> str:
        return unicodedata.normalize("NFC", value).casefold()

    user = list(dict.fromkeys(user))
    keys = {key(u) for u in user}
    assert subject == user + [k for k in clean_keywords(ours) if key(k) not in keys]
    assert tags == user + [f"CloudSight/{k}" for k in clean_keywords(ours) if key(f"CloudSight/{k}") not in keys]


def run_property(tmp_path: Path, caption: str, user: list[str], ours: list[str], *, tools: bool) -> None:
    path = tmp_path / f"p{abs(hash((caption, tuple(user), tuple(ours))))}.xmp"
    seed(path, user)
    write_sidecar(str(path), content(caption, ours))
    strict = exiv2(path)
    want = expected_caption(caption)
    assert strict.get("Xmp.dc.description", {}).get('lang="x-default"', "") == want
    assert strict["Xmp.xmp.Rating"] == "2"
    check_merge(as_list(strict.get("Xmp.dc.subject", [])), as_list(strict.get("Xmp.digiKam.TagsList", [])), user, ours)
    if tools:
        root = subprocess.run(["exiftool", "-X", "-struct", str(path)], capture_output=True, check=True).stdout
        tree = fromstring(root)
        dc = "{http://ns.exiftool.org/XMP/XMP-dc/1.0/}"
        subj = [li.text or "" for el in tree.iter(f"{dc}Subject") for li in el.iter() if li.tag.endswith("}li")]
        desc = [el.text or "" for el in tree.iter(f"{dc}Description")]
        assert subj == as_list(strict.get("Xmp.dc.subject", []))
        assert desc == ([want] if want else [])
    assert write_sidecar(str(path), content(caption, ours)) is False
    assert strip_sidecar(str(path)) == "updated"
    restored = exiv2(path)
    assert as_list(restored.get("Xmp.dc.subject", [])) == list(dict.fromkeys(user))
    assert "Xmp.dc.description" not in restored and not any(k.startswith("Xmp.tagger") for k in restored)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@pytest.mark.slow
@given(caption=xml_text, user=st.lists(user_keyword, max_size=6), ours=st.lists(xml_text, max_size=6))
def test_property_merge_with_exiv2(tmp_path, caption, user, ours):
    run_property(tmp_path, caption, user, ours, tools=False)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@pytest.mark.slow
@given(caption=xml_text, user=st.lists(user_keyword, max_size=6), ours=st.lists(xml_text, max_size=6))
def test_property_merge_with_exiftool(tmp_path, caption, user, ours):
    run_property(tmp_path, caption, user, ours, tools=True)


# --- the image's own metadata, languages, ownership, concurrent edits ----------------------------


def test_languages_each_caption_under_its_own_lang_and_strip_removes_them(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content("A red barn", ("barn",)), now=NOW)
    write_sidecar(str(path), content("Eine rote Scheune", ("scheune",), locale="de-DE", token="tok-2"), now=NOW)
    strict = exiv2(path)["Xmp.dc.description"]
    # x-default stays the first caption; the German one gets its own language, no English duplicate.
    assert strict == {'lang="x-default"': "A red barn", 'lang="de-DE"': "Eine rote Scheune"}
    assert (
        write_sidecar(str(path), content("Eine rote Scheune", ("scheune",), locale="de-DE", token="tok-2"), now=NOW)
        is False
    )
    assert strip_sidecar(str(path)) == "deleted"


@pytest.mark.slow
def test_a_users_description_in_one_language_gets_no_x_default(tmp_path):
    path = tmp_path / "a.xmp"
    subprocess.run(["exiftool", "-q", "-o", str(path), "-XMP-dc:Description-en-US=mine, in English"], check=True)
    write_sidecar(str(path), content())
    assert exiv2(path)["Xmp.dc.description"] == {'lang="en-US"': "mine, in English"}
    assert exif(path)["XMP-iptcCore:AltTextAccessibility"] == "A red barn beside a wheat field"


@pytest.mark.slow
def test_boilerplate_in_a_sidecar_is_replaced_and_restored_by_strip(tmp_path):
    path = tmp_path / "a.xmp"
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-o",
            str(path),
            "-XMP-dc:Description=SONY DSC",
            "-XMP-tiff:ImageDescription=SONY DSC",
            "-XMP:Rating=2",
        ],
        check=True,
    )
    write_sidecar(str(path), content())
    tags = exif(path)
    assert tags["XMP-dc:Description"] == tags["XMP-tiff:ImageDescription"] == "A red barn beside a wheat field"
    assert strip_sidecar(str(path)) == "updated"
    tags = exif(path)
    assert tags["XMP-dc:Description"] == tags["XMP-tiff:ImageDescription"] == "SONY DSC"


def test_seq_stays_seq_and_added_fields_are_seeded_with_the_users_keywords(tmp_path):
    path = tmp_path / "a.xmp"
    path.write_text(
        "<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        "<rdf:Description rdf:about='' xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:subject><rdf:Seq>"
        "<rdf:li>userkeyword</rdf:li><rdf:li>Rome</rdf:li></rdf:Seq></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>",
        "utf-8",
    )
    original = path.read_bytes()
    write_sidecar(str(path), content(keywords=("barn",)))
    text = path.read_text("utf-8")
    assert "<rdf:Seq>" in text.split("<dc:subject>")[1].split("</dc:subject>")[0]
    tags = exif(path)
    assert tags["XMP-dc:Subject"] == ["userkeyword", "Rome", "barn"]
    # darktable stops at lr:hierarchicalSubject, digiKam and Immich at TagsList: both carry the user's too.
    assert tags["XMP-lr:HierarchicalSubject"] == ["userkeyword", "Rome", "CloudSight|barn"]
    assert tags["XMP-digiKam:TagsList"] == ["userkeyword", "Rome", "CloudSight/barn"]
    assert tags["XMP-tagger:SeededTagsList"] == ["userkeyword", "Rome"]
    assert strip_sidecar(str(path)) == "updated"
    tags = exif(path)
    assert tags["XMP-dc:Subject"] == ["userkeyword", "Rome"]
    assert "XMP-digiKam:TagsList" not in tags and "XMP-lr:HierarchicalSubject" not in tags
    assert b"rdf:Seq" in path.read_bytes() and b"rdf:Seq" in original


def test_existing_sidecar_keeps_owner_group_and_mode(tmp_path):
    path = copy_fixture(tmp_path, "digikam.xmp")
    os.chown(path, 1234, 2345)
    os.chmod(path, 0o664)
    assert write_sidecar(str(path), content())
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 2345, 0o664)


@pytest.mark.slow
def test_new_sidecar_gets_the_photos_owner_and_a_copy_of_its_metadata(tmp_path):
    from helpers import make_photo

    photo = make_photo(tmp_path / "IMG_1.JPG", seed=5)
    subprocess.run(
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-IPTC:Caption-Abstract=From IPTC",
            "-IPTC:Keywords=iptckw",
            "-IPTC:ObjectName=Title IPTC",
            "-EXIF:Artist=Bob",
            "-EXIF:Copyright=(c) Bob",
            str(photo),
        ],
        check=True,
    )
    os.chown(photo, 1234, 2345)
    target = tmp_path / "IMG_1.JPG.xmp"
    assert write_sidecar(str(target), content(), image=str(photo))
    tags = exif(target)
    assert tags["XMP-dc:Description"] == "From IPTC"  # the user's: tagger's caption goes to its namespace only
    assert (
        tags["XMP-dc:Title"] == "Title IPTC"
        and tags["XMP-dc:Creator"] == ["Bob"]
        and tags["XMP-dc:Rights"] == "(c) Bob"
    )
    assert tags["XMP-dc:Subject"][0] == "iptckw"
    assert (target.stat().st_uid, target.stat().st_gid) == (1234, 2345)
    assert strip_sidecar(str(target)) == "deleted"


@pytest.mark.slow
def test_an_edit_saved_between_read_and_rename_is_merged_not_lost(tmp_path, monkeypatch):
    path = copy_fixture(tmp_path, "digikam.xmp")
    real = sidecar._encode
    calls = []

    def another_app_saves_meanwhile(packet, p):
        data = real(packet, p)
        if not calls:  # digiKam writes the file while tagger is between reading and renaming
            subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP:Rating=5", str(path)], check=True)
        calls.append(p)
        return data

    monkeypatch.setattr(sidecar, "_encode", another_app_saves_meanwhile)
    assert write_sidecar(str(path), content())
    tags = exif(path)
    assert tags["XMP-xmp:Rating"] == 5 and tags["XMP-tagger:Token"] == "tok-1"
    assert len(calls) == 2


def test_once_the_user_rewrites_taggers_description_tagger_keeps_no_language_beside_it(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content("A red barn", ("barn",)), now=NOW)
    write_sidecar(str(path), content("Eine rote Scheune", ("scheune",), locale="de-DE"), now=NOW)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-XMP-dc:Description=Our barn, 1998", str(path)], check=True
    )
    write_sidecar(str(path), content("Eine rote Scheune!", ("scheune",), locale="de-DE"), now=NOW)
    assert exiv2(path)["Xmp.dc.description"] == {'lang="x-default"': "Our barn, 1998"}
    assert exif(path)["XMP-tagger:Captions-de-DE"] == "Eine rote Scheune!"
    assert strip_sidecar(str(path)) == "updated"
    assert exiv2(path)["Xmp.dc.description"] == {'lang="x-default"': "Our barn, 1998"}


def test_no_locale_writes_x_default_only(tmp_path):
    path = tmp_path / "a.xmp"
    write_sidecar(str(path), content(locale=""), now=NOW)
    write_sidecar(str(path), content("A grey cat", locale=""), now=NOW)
    assert exiv2(path)["Xmp.dc.description"] == {'lang="x-default"': "A grey cat"}
