"""Tests for tagger.prepare.formats: extension checks and content sniffing on real generated files."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import OK, write_corpus

from tagger.prepare.formats import SNIFF_BYTES, is_image_name, sniff


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.JPG", True),
        ("b.heic", True),
        ("c.NEF", True),
        ("d.avif", True),
        ("notes.txt", False),
        (".jpg", False),
        ("noext", False),
    ],
)
def test_is_image_name(name: str, expected: bool) -> None:
    assert is_image_name(name) is expected


@pytest.mark.slow
def test_sniff_generated_files(tmp_path: Path) -> None:
    expectations = write_corpus(tmp_path)
    kinds = {name: sniff((tmp_path / name).read_bytes()[:SNIFF_BYTES]) for name in expectations}
    assert kinds["orient_1.jpg"] == "jpeg"
    assert kinds["png_named.jpg"] == "png"
    assert kinds["multipage.tif"] == "tiff" and kinds["rgb16.tif"] == "tiff"
    assert kinds["animated.gif"] == "gif"
    assert kinds["photo.webp"] == "webp"
    assert kinds["photo.bmp"] == "bmp"
    assert kinds["photo.heic"] == "heif"
    assert kinds["text.jpg"] is None and kinds["empty.jpg"] is None
    assert all(kinds[name] is not None for name, e in expectations.items() if e == OK)


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"FUJIFILMCCD-RAW 0201", "raw"),
        (b"IIRO\x08\x00\x00\x00", "raw"),
        (b"IIU\x00\x08\x00\x00\x00", "raw"),
        (b"II*\x00\x10\x00\x00\x00CR\x02\x00", "raw"),
        (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01", "raw"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "heif"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", None),  # an MP4 video
        (b"BMxxxx\x01\x00\x00\x00", None),
    ],
)
def test_sniff_magic(head: bytes, kind: str | None) -> None:
    assert sniff(head[:SNIFF_BYTES]) == kind
