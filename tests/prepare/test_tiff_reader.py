"""The one TIFF directory reader against hostile files, and the one signature table the other modules ask."""

from __future__ import annotations

import io

import pytest
from golden_corpus import FLOAT, LONG, _pixels, at, rgb_ifd, tiff

from tagger.prepare.formats import is_classic_tiff, is_tiff_like, sniff, structure
from tagger.prepare.hash_io import Malformed
from tagger.prepare.hash_pixels import pixel_hash
from tagger.prepare.hashing import content_hash_of
from tagger.prepare.tiff import TiffReader, data_extent

STRIP = _pixels(6, 4, 1)


def _reader(data: bytes, **limits: int | None) -> TiffReader:
    return TiffReader(io.BytesIO(data), **limits)  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("big", [False, True])
def test_the_reader_reads_both_byte_orders_and_bigtiff(order: str, big: bool) -> None:
    data = tiff([(rgb_ifd(6, 4, 0), at("ifd", 1)), (rgb_ifd(6, 4, 0), None)], [STRIP], order=order, big=big)
    reader = _reader(data)
    assert (reader.order, reader.big) == (order, big)
    walked = list(reader.walk())
    assert len(walked) == 2
    by_tag = {e.tag: reader.values(e) for e in walked[0][1]}
    assert by_tag[256] == [6] and by_tag[258] == [8, 8, 8] and by_tag[279] == [len(STRIP)]


def test_loops_are_walked_once_and_a_long_chain_is_refused_or_cut() -> None:
    loop = tiff(
        [(rgb_ifd(6, 4, 0), at("ifd", 1)), (rgb_ifd(6, 4, 0, [(330, LONG, at("ifd", 0))]), at("ifd", 0))], [STRIP]
    )
    assert len(list(_reader(loop).walk())) == 2
    chain = tiff([(rgb_ifd(6, 4, 0), at("ifd", i + 1) if i < 9 else None) for i in range(10)], [STRIP])
    with pytest.raises(Malformed):
        list(_reader(chain).walk(max_ifds=5))
    assert len(list(_reader(chain).walk(max_ifds=5, strict=False))) == 5


def test_out_of_range_offsets_and_huge_counts_are_malformed() -> None:
    data = tiff([(rgb_ifd(6, 4, 0), None)], [STRIP])
    reader = _reader(data)
    with pytest.raises(Malformed):
        reader.ifd(len(data) - 4)  # a table running off the end
    with pytest.raises(Malformed):
        reader.read(len(data) - 2, 4)
    entries, _ = reader.ifd(reader.first)
    bits = next(e for e in entries if e.tag == 258)
    with pytest.raises(Malformed):
        reader.raw(bits._replace(field=(1 << 30).to_bytes(4, "little")))  # values past the end
    with pytest.raises(Malformed):
        _reader(data, max_value_bytes=4).raw(bits)  # more value bytes than allowed
    with pytest.raises(Malformed):
        _reader(data, max_entries=3).ifd(reader.first)  # more entries than allowed
    with pytest.raises(Malformed):
        reader.raw(bits._replace(kind=99))  # a type no reader knows
    with pytest.raises(Malformed):
        _reader(b"II*\x00\x08")  # a header cut short


def test_subifds_stored_as_floats_fall_back_to_the_pixels_instead_of_crashing() -> None:
    """Before the one reader, hash_tiff raised TypeError here (a float's bytes taken for an offset)."""
    data = tiff([(rgb_ifd(6, 4, 0, [(330, FLOAT, [1.5])]), None)], [STRIP])
    with pytest.raises(Malformed):
        list(_reader(data).walk())
    identity = content_hash_of(data, "odd.tif")
    assert identity == pixel_hash("odd.tif", lambda: io.BytesIO(data)) is not None
    assert data_extent(data) is None


@pytest.mark.parametrize(
    ("head", "sniffed", "structured"),
    [
        (b"\xff\xd8\xff\xe0", "jpeg", "jpeg"),
        (b"\xff\xd8junk", None, "jpeg"),  # the hasher reads any SOI; a scan wants a marker after it
        (b"II*\x00\x08\x00\x00\x00", "tiff", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff", "tiff"),
        (b"II+\x00\x08\x00\x00\x00", None, "tiff"),  # BigTIFF: hashed by structure, not sniffed
        (b"IIRO\x08\x00\x00\x00", "raw", "tiff"),
        (b"II*\x00\x10\x00\x00\x00CR\x02\x00", "raw", "tiff"),
        (b"FUJIFILMCCD-RAW 0201", "raw", "raf"),
        (b"BM\x00\x00\x00\x00\x00\x00\x00\x00", "bmp", "bmp"),
        (b"BMxxftypheic", None, "bmp"),
        (b"\x00\x00\x00\x18ftypisom", None, "bmff"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8L", "webp", "webp"),
        (b"GIF87a", "gif", "gif"),
        (b"\x89PNG\r\n\x1a\n", "png", "png"),
        (b"hello", None, None),
    ],
)
def test_sniff_and_structure_read_the_one_table(head: bytes, sniffed: str | None, structured: str | None) -> None:
    assert sniff(head) == sniffed
    assert structure(head) == structured
    assert is_classic_tiff(head) == (head[:4] in (b"II*\x00", b"MM\x00*"))
    assert is_tiff_like(head) == (structured == "tiff")
