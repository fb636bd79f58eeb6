"""Reading what an image carries (XMP, IPTC-IIM, EXIF) from every format, and its MWG mapping to XMP."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pillow_heif
import pytest
from helpers import make_photo
from PIL import Image
from rawfiles import dng, raw_scene

from tagger.prepare.embedded import is_boilerplate, read_image_metadata
from tagger.sidecars import xmp
from tagger.sidecars.mwg import image_packet

ARGS = [
    "-XMP-dc:Description=my own espresso",
    "-XMP-lr:HierarchicalSubject=Places|Rome",
    "-XMP-xmp:Rating=4",
    "-EXIF:Artist=Ann",
    "-EXIF:Copyright=(c) Ann",
    "-EXIF:XPKeywords=winkw;second",
    "-EXIF:XPComment=xp note",
]


def write(path: Path, *args: str) -> Path:
    subprocess.run(["exiftool", "-q", "-q", "-overwrite_original", *args, str(path)], check=True)
    return path


def source(tmp_path: Path, fmt: str) -> Path:
    base = Image.open(make_photo(tmp_path / "src.jpg", seed=7)).convert("RGB")
    path = tmp_path / f"photo.{fmt}"
    if fmt == "heic":
        pillow_heif.from_pillow(base).save(path, quality=70)
    elif fmt == "dng":
        path.write_bytes(dng(raw_scene()))
    else:
        base.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jpg", "tif", "png", "webp", "heic", "avif", "dng"])
def test_every_format_yields_its_xmp_and_exif(tmp_path, fmt):
    path = write(source(tmp_path, fmt), *ARGS)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = read_image_metadata(str(path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest  # read, never written
    packet = xmp.parse(meta.xmp)
    assert xmp.property_items(packet, f"{{{xmp.DC}}}description") == [("x-default", "my own espresso")]
    assert meta.exif["Artist"] == "Ann" and meta.exif["Copyright"] == "(c) Ann"
    assert meta.exif["XPKeywords"] == "winkw;second" and meta.exif["XPComment"] == "xp note"


@pytest.mark.parametrize("fmt", ["jpg", "tif"])
def test_iptc_is_decoded_by_its_declared_charset(tmp_path, fmt):
    path = write(
        source(tmp_path, fmt),
        "-codedcharacterset=utf8",
        "-IPTC:Caption-Abstract=caf\u00e9 cr\u00e8me",
        "-IPTC:Keywords=Rome",
        "-IPTC:Keywords=caf\u00e9",
        "-IPTC:By-line=Ann",
        "-IPTC:CopyrightNotice=(c) Ann",
        "-IPTC:ObjectName=Title",
    )
    iptc = read_image_metadata(str(path)).iptc
    assert iptc == {
        "Caption-Abstract": ("caf\u00e9 cr\u00e8me",),
        "Keywords": ("Rome", "caf\u00e9"),
        "By-line": ("Ann",),
        "CopyrightNotice": ("(c) Ann",),
        "ObjectName": ("Title",),
    }


@pytest.mark.slow
def test_mwg_mapping_fills_what_the_xmp_lacks_and_xmp_wins(tmp_path):
    path = write(
        source(tmp_path, "jpg"),
        "-XMP-dc:Description=from XMP",
        "-IPTC:Caption-Abstract=from IPTC",
        "-IPTC:Keywords=iptc1",
        "-EXIF:XPKeywords=win1;iptc1",
        "-IPTC:By-line=Ann",
        "-EXIF:Artist=Bob",
        "-IPTC:ObjectName=T",
        "-EXIF:Copyright=(c) Bob",
        "-EXIF:Rating=3",
    )
    copy = path.with_suffix(".xmp")
    copy.write_text(xmp.serialise(image_packet(read_image_metadata(str(path)))), "utf-8")
    out = subprocess.run(["exiftool", "-j", "-G1", "-xmp:all", str(copy)], capture_output=True, check=True, text=True)

    tags = json.loads(out.stdout)[0]
    assert tags["XMP-dc:Description"] == "from XMP"
    assert tags["XMP-dc:Subject"] == ["iptc1", "win1"]
    assert tags["XMP-dc:Creator"] == "Ann" and tags["XMP-dc:Title"] == "T" and tags["XMP-dc:Rights"] == "(c) Bob"
    assert tags["XMP-xmp:Rating"] == 3


def test_camera_boilerplate_is_not_a_description(tmp_path):
    for text in ("OLYMPUS DIGITAL CAMERA", "SONY DSC", "KONICA MINOLTA DIGITAL CAMERA", "   ", "", "sony dsc  "):
        assert is_boilerplate(text), text
    assert not is_boilerplate("my own espresso")
    path = write(source(tmp_path, "jpg"), "-EXIF:ImageDescription=OLYMPUS DIGITAL CAMERA")
    packet = image_packet(read_image_metadata(str(path)))
    assert xmp.property_items(packet, f"{{{xmp.DC}}}description") == []


def test_unreadable_or_metadata_free_files_read_as_empty(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe1\x00\x10garbage")
    assert read_image_metadata(str(junk)).empty
    assert read_image_metadata(str(tmp_path / "missing.jpg")).empty
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    assert read_image_metadata(str(plain)).empty
