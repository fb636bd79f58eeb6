"""Tests for tagger.prepare.hashing: metadata edits keep the hash, pixel edits change it."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import zlib
import struct
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from tagger.prepare import hash_io, hashing
from tagger.prepare.hashing import content_hash
from corpus import app13_iptc, insert_after_soi, photo


def _whole(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "a.jpg"
    photo().save(path, quality=90)
    return path


def test_jpeg_metadata_does_not_change_the_hash(jpeg: Path, tmp_path: Path) -> None:
    edited = tmp_path / "edited.jpg"
    shutil.copy(jpeg, edited)
    subprocess.run(
        ["exiftool", "-q", "-overwrite_original", "-Artist=Someone", "-XMP-dc:Description=a caption",
         "-IPTC:Caption-Abstract=iptc caption", "-Comment=a comment", "-GPSLatitude=10", "-GPSLatitudeRef=N", str(edited)],
        check=True,
    )
    data = edited.read_bytes()
    assert b"Exif" in data and b"http://ns.adobe.com/xap" in data and b"a comment" in data
    assert data != jpeg.read_bytes()
    assert content_hash(str(edited)) == content_hash(str(jpeg))
    # A trailer after EOI (some phones append one) is not the picture either.
    trailer = tmp_path / "trailer.jpg"
    trailer.write_bytes(jpeg.read_bytes() + b"TRAILERDATA")
    assert content_hash(str(trailer)) == content_hash(str(jpeg))
    iptc = tmp_path / "iptc.jpg"
    iptc.write_bytes(insert_after_soi(jpeg.read_bytes(), app13_iptc(b"hello")))
    assert content_hash(str(iptc)) == content_hash(str(jpeg))


def test_jpeg_different_pixels_change_the_hash(jpeg: Path, tmp_path: Path) -> None:
    other = tmp_path / "b.jpg"
    im = photo()
    im.putpixel((100, 100), (0, 255, 0))
    im.save(other, quality=90)
    assert content_hash(str(other)) != content_hash(str(jpeg))
    requant = tmp_path / "c.jpg"
    photo().save(requant, quality=80)
    assert content_hash(str(requant)) != content_hash(str(jpeg))


def test_jpeg_hash_is_not_the_whole_file_hash(jpeg: Path) -> None:
    assert content_hash(str(jpeg)) != _whole(jpeg)
    assert len(content_hash(str(jpeg))) == 64


def test_png_text_chunks_do_not_change_the_hash(tmp_path: Path) -> None:
    plain, texted = tmp_path / "a.png", tmp_path / "b.png"
    photo().save(plain)
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "hello")
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta/>", zip=True)
    info.add_text("Software", "x" * 500, zip=True)
    exif = Image.Exif()
    exif[0x010F] = "Cam"
    photo().save(texted, pnginfo=info, exif=exif.tobytes())
    assert texted.read_bytes() != plain.read_bytes()
    assert content_hash(str(texted)) == content_hash(str(plain))
    changed = tmp_path / "c.png"
    im = photo()
    im.putpixel((1, 1), (1, 2, 3))
    im.save(changed)
    assert content_hash(str(changed)) != content_hash(str(plain))


def test_other_formats_and_malformed_files_hash_whole(tmp_path: Path) -> None:
    for name, data in {
        "a.webp": None,
        "bad.jpg": b"\xff\xd8\xff\xe1\xff\xff" + b"x" * 100,  # APP1 length runs past the end
        "bad.png": b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + b"\0" * 5,  # cut inside a chunk
        "text.jpg": b"just words",
        "empty.jpg": b"",
    }.items():
        path = tmp_path / name
        if data is None:
            photo().save(path, quality=80)
        else:
            path.write_bytes(data)
        assert content_hash(str(path)) == _whole(path), name


def test_large_files_are_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    raw = b"".join(b"\0" + bytes((x * 7 + y) % 256 for x in range(3000)) for y in range(400))
    ihdr = struct.pack(">IIBBBBB", 1000, 400, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b""))
    monkeypatch.setattr(hash_io, "CHUNK", 4096)
    reads: list[int] = []

    class Spy(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    monkeypatch.setattr(hashing, "open", lambda p, m: Spy(io.FileIO(p, m.replace("b", ""))), raising=False)
    digest = content_hash(str(big))
    assert max(reads) <= 4096 and -1 not in reads
    monkeypatch.undo()
    assert content_hash(str(big)) == digest


def test_unreadable_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        content_hash(str(tmp_path / "missing.jpg"))
