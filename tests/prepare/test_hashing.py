"""Tests for tagger.prepare.hashing: metadata edits keep the hash, pixel edits change it."""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from corpus import app13_iptc, insert_after_soi, photo
from PIL import Image, PngImagePlugin

from tagger.prepare import hash_io, hashing
from tagger.prepare.hashing import content_hash


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
        [
            "exiftool",
            "-q",
            "-overwrite_original",
            "-Artist=Someone",
            "-XMP-dc:Description=a caption",
            "-IPTC:Caption-Abstract=iptc caption",
            "-Comment=a comment",
            "-GPSLatitude=10",
            "-GPSLatitudeRef=N",
            str(edited),
        ],
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


def test_undecodable_files_hash_whole_and_bmp_is_its_pixels(tmp_path: Path) -> None:
    for name, data in {
        "bad.jpg": b"\xff\xd8\xff\xe1\xff\xff" + b"x" * 100,  # APP1 length runs past the end
        "bad.png": b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + b"\0" * 5,  # cut inside a chunk
        "bad.tif": b"II*\x00" + struct.pack("<I", 10_000),  # IFD beyond the end
        "bad.webp": b"RIFF\x10\x00\x00\x00WEBPVP8 \xff\x00\x00\x00",
        "text.jpg": b"just words",
        "empty.jpg": b"",
    }.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert content_hash(str(path)) == _whole(path), name
    bmp = tmp_path / "a.bmp"
    photo().save(bmp)
    assert content_hash(str(bmp)) == _whole(bmp)  # BMP has no metadata blocks: header and pixels are the image


def _hash_in_small_reads(path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Hash ``path`` with 4 KB reads, asserting no read asked for more (nor for the whole file)."""
    monkeypatch.setattr(hash_io, "CHUNK", 4096)
    reads: list[int] = []

    class Spy(io.BufferedReader):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(-1 if size is None else size)
            return super().read(size)

    monkeypatch.setattr(hashing, "open", lambda p, m: Spy(io.FileIO(p, m.replace("b", ""))), raising=False)
    digest = content_hash(str(path))
    assert max(reads) <= 4096 and -1 not in reads
    monkeypatch.undo()
    return digest


def test_large_files_are_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    raw = b"".join(b"\0" + bytes((x * 7 + y) % 256 for x in range(3000)) for y in range(400))
    ihdr = struct.pack(">IIBBBBB", 1000, 400, 8, 2, 0, 0, 0)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    big.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")
    )
    digest = _hash_in_small_reads(big, monkeypatch)
    assert content_hash(str(big)) == digest


def test_unreadable_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        content_hash(str(tmp_path / "missing.jpg"))


# --- scheme 2: every format tagger reads ---------------------------------------------------


def _exiftool(path: Path, *args: str) -> None:
    run = subprocess.run(["exiftool", "-overwrite_original", *args, str(path)], capture_output=True, text=True)
    assert run.returncode == 0 and "1 image files updated" in run.stdout, run.stdout + run.stderr


EDITS = (
    "-XMP-dc:Description=a caption",
    "-XMP-dc:Subject+=kw",
    "-Artist=Someone",
    "-Copyright=(c) me",
    "-ImageDescription=described",
    "-DateTimeOriginal=2020:01:02 03:04:05",
    "-GPSLatitude=10",
    "-GPSLatitudeRef=N",
)


def _save(im: Image.Image, path: Path, **params: object) -> Path:
    if path.suffix in (".heic", ".heif"):
        import pillow_heif

        pillow_heif.register_heif_opener()
    im.save(path, **params)
    return path


FORMATS = {
    "a.tif": {},
    "lzw.tif": {"compression": "tiff_lzw"},
    "deflate.tif": {"compression": "tiff_deflate"},
    "a.webp": {"quality": 80},
    "lossless.webp": {"lossless": True},
    "a.gif": {},
    "a.heic": {"quality": 80},
    "a.avif": {"quality": 80},
    "a.png": {},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_exiftool_edits_keep_the_identity_and_pixels_change_it(tmp_path: Path, name: str) -> None:
    original = _save(photo(), tmp_path / name, **FORMATS[name])
    edited = tmp_path / ("edited" + original.suffix)
    shutil.copy(original, edited)
    _exiftool(edited, *EDITS)
    assert edited.read_bytes() != original.read_bytes()
    assert b"a caption" in edited.read_bytes()
    assert content_hash(str(edited)) == content_hash(str(original))
    if original.suffix != ".png":  # a PNG without metadata chunks hashes like its whole file
        assert content_hash(str(original)) != _whole(original)
    # Removing all metadata (exiftool -all=) is an edit too.
    stripped = tmp_path / ("stripped" + original.suffix)
    shutil.copy(edited, stripped)
    _exiftool(stripped, "-all=")
    assert content_hash(str(stripped)) == content_hash(str(original))
    im = photo()
    im.putpixel((5, 5), (0, 255, 0))
    im.putpixel((6, 5), (0, 255, 0))
    changed = _save(im, tmp_path / ("changed" + original.suffix), **FORMATS[name])
    assert content_hash(str(changed)) != content_hash(str(original))


def test_dng_and_tiff_raw_edits_keep_the_identity(tmp_path: Path) -> None:
    from rawfiles import dng, preview_scene, raw_scene
    from rawfiles import jpeg as raw_jpeg

    for name, data in {
        "preview.dng": dng(raw_scene(), raw_jpeg(preview_scene()), gps=("N", (1, 2, 3), "E", (4, 5, 6))),
        "raw_only.dng": dng(raw_scene()),
    }.items():
        original = tmp_path / name
        original.write_bytes(data)
        edited = tmp_path / ("edited_" + name)
        shutil.copy(original, edited)
        _exiftool(edited, *EDITS, "-Orientation#=6")
        assert content_hash(str(edited)) == content_hash(str(original)) != _whole(original)
        other = tmp_path / ("other_" + name)
        scene = raw_scene()
        scene[10:20, 10:20] = (0.9, 0.9, 0.9)
        other.write_bytes(dng(scene, raw_jpeg(preview_scene()) if "preview" in name else None))
        assert content_hash(str(other)) != content_hash(str(original))


def test_a_colour_profile_is_not_identity_in_any_format(tmp_path: Path) -> None:
    from corpus import prophoto_profile

    icc = prophoto_profile()
    for suffix, params in {".png": {}, ".webp": {"quality": 80}, ".tif": {}, ".jpg": {"quality": 90}}.items():
        plain = _save(photo(), tmp_path / ("plain" + suffix), **params)
        tagged = _save(photo(), tmp_path / ("icc" + suffix), icc_profile=icc, **params)
        assert tagged.read_bytes() != plain.read_bytes()
        assert content_hash(str(tagged)) == content_hash(str(plain)), suffix


def _unparsed_tiff(artist: str) -> bytes:
    """A 32x24 RGB TIFF whose SubIFDs pointer runs off the end."""
    from rawfiles import ASCII, LONG, SHORT, tiff

    pixels = photo((32, 24)).tobytes()
    return tiff(
        [
            [
                (256, LONG, [32]),
                (257, LONG, [24]),
                (258, SHORT, [8, 8, 8]),
                (259, SHORT, [1]),
                (262, SHORT, [2]),
                (273, LONG, lambda layout: [layout["block", 0]]),
                (277, SHORT, [3]),
                (278, LONG, [24]),
                (279, LONG, [len(pixels)]),
                (315, ASCII, artist),
                (330, LONG, [1 << 30]),
            ]
        ],
        [pixels],
    )


def test_a_structure_that_does_not_parse_falls_back_to_the_pixels(tmp_path: Path) -> None:
    """A TIFF whose SubIFDs pointer runs off the end: Pillow still decodes it, so metadata stays free."""
    one, two = tmp_path / "one.tif", tmp_path / "two.tif"
    one.write_bytes(_unparsed_tiff("Someone"))
    two.write_bytes(_unparsed_tiff("Someone else entirely"))
    with Image.open(one) as im:
        assert im.tobytes() == photo((32, 24)).tobytes()
    assert content_hash(str(one)) == content_hash(str(two)) != _whole(one)


def test_scheme_1_is_the_hash_older_taggers_computed(tmp_path: Path) -> None:
    from corpus import prophoto_profile

    jpeg = tmp_path / "a.jpg"
    photo().save(jpeg, quality=90)
    tif = _save(photo(), tmp_path / "a.tif")
    png = _save(photo(), tmp_path / "a.png", icc_profile=prophoto_profile())
    assert hashing.legacy_hash(str(jpeg)) == content_hash(str(jpeg)) != _whole(jpeg)
    assert hashing.legacy_hash(str(tif)) == _whole(tif) != content_hash(str(tif))
    assert hashing.legacy_hash(str(png)) == _whole(png) != content_hash(str(png))  # scheme 1 kept iCCP
    assert hashing.carries_over(str(jpeg))
    assert not hashing.carries_over(str(tif)) and not hashing.carries_over(str(png))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe1\xff\xff" + b"x" * 100)
    assert not hashing.carries_over(str(bad))


def test_the_ledger_records_the_scheme_hashing_computes() -> None:
    from tagger.ledger.planning import HASH_SCHEME

    assert HASH_SCHEME == hashing.SCHEME


def test_large_tiffs_are_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.tif"
    Image.effect_noise((1200, 900), 60).convert("RGB").save(big)
    digest = _hash_in_small_reads(big, monkeypatch)
    assert content_hash(str(big)) == digest != _whole(big)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def test_cr3_identity_is_its_media_data_and_preview(tmp_path: Path) -> None:
    """CR3 keeps EXIF (CMT1-4) in moov and XMP in a uuid box; a writer grows them and moves mdat."""
    xmp_uuid = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")
    prvw_uuid = bytes.fromhex("eaf42b5e1c984b88b9fbb7dc406e4d16")
    jpeg = io.BytesIO()
    photo().save(jpeg, "JPEG", quality=80)

    def cr3(exif: bytes, xmp: bytes, raw: bytes) -> bytes:
        return (
            _box(b"ftyp", b"crx \x00\x00\x00\x01crx isom")
            + _box(b"moov", _box(b"uuid", bytes.fromhex("85c0b687820f11e08111f4ce462b6a48") + _box(b"CMT1", exif)))
            + _box(b"uuid", xmp_uuid + xmp)
            + _box(b"uuid", prvw_uuid + jpeg.getvalue())
            + _box(b"mdat", raw + jpeg.getvalue())
        )

    paths = {}
    for name, data in {
        "a": cr3(b"II*\0exif", b"<x/>", b"RAWDATA" * 100),
        "edited": cr3(b"II*\0exif, longer now" * 10, b"<x:xmpmeta>a caption</x:xmpmeta>" * 20, b"RAWDATA" * 100),
        "other": cr3(b"II*\0exif", b"<x/>", b"RAWDATB" * 100),
    }.items():
        paths[name] = tmp_path / f"{name}.cr3"
        paths[name].write_bytes(data)
    assert content_hash(str(paths["edited"])) == content_hash(str(paths["a"])) != _whole(paths["a"])
    assert content_hash(str(paths["other"])) != content_hash(str(paths["a"]))


def test_raf_identity_is_its_jpeg_image_data_and_raw_blocks(tmp_path: Path) -> None:
    plain = io.BytesIO()
    photo().save(plain, "JPEG", quality=80)

    def raf(jpeg: bytes, cfa: bytes) -> bytes:
        header = b"FUJIFILMCCD-RAW 0201FF383501" + b"X-T3".ljust(32, b"\0") + b"0100" + b"\0" * 20
        assert len(header) == 84
        jpeg_at = 84 + 24 + 52
        cfa_header = b"\0\0\0\x01" + b"dims" * 4
        layout = struct.pack(
            ">6I",
            jpeg_at,
            len(jpeg),
            jpeg_at + len(jpeg),
            len(cfa_header),
            jpeg_at + len(jpeg) + len(cfa_header),
            len(cfa),
        )
        return header + layout + b"\0" * 52 + jpeg + cfa_header + cfa

    tagged = insert_after_soi(plain.getvalue(), app13_iptc(b"an IPTC caption written by a tool"))
    paths = {name: tmp_path / f"{name}.raf" for name in ("a", "edited", "other")}
    paths["a"].write_bytes(raf(plain.getvalue(), b"CFA" * 300))
    paths["edited"].write_bytes(raf(tagged, b"CFA" * 300))
    paths["other"].write_bytes(raf(plain.getvalue(), b"CFB" * 300))
    assert content_hash(str(paths["edited"])) == content_hash(str(paths["a"])) != _whole(paths["a"])
    assert content_hash(str(paths["other"])) != content_hash(str(paths["a"]))


def test_a_file_hashed_from_memory_has_the_identity_hashed_from_disk(tmp_path: Path) -> None:
    """``read_once`` hashes the bytes it read to prepare: every format, the pixel fallback and whole-file hashes agree."""
    from corpus import write_corpus

    from tagger.prepare.hashing import content_hash_of

    write_corpus(tmp_path)
    (tmp_path / "unparsed.tif").write_bytes(_unparsed_tiff("x"))
    (tmp_path / "junk.cr2").write_bytes(b"not a raw file at all" * 50)
    files = sorted(p for p in tmp_path.iterdir() if p.is_file())
    assert len(files) > 20
    for path in files:
        assert content_hash_of(path.read_bytes(), path.name) == content_hash(str(path)), path.name
