"""Tests for tagger.prepare.normalise on the generated corpus: real files, decoded back and checked pixel by pixel."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest
from corpus import GPS_SOUTH_WEST, NON_UTF8_NAME, OK, hang, photo, write_corpus
from PIL import Image, ImageFile

from tagger.prepare import formats, normalise
from tagger.prepare.normalise import Prepared, PrepareError, PrepareOptions, Preparer, prepare

SMALL = PrepareOptions(max_edge=128)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("corpus")
    return folder, write_corpus(folder)


def _decode(prepared: Prepared) -> Image.Image:
    im = Image.open(io.BytesIO(prepared.data))
    im.load()
    return im


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def _ok_names(expectations: dict[str, str]) -> list[str]:
    return [name for name, expectation in expectations.items() if expectation == OK]


@pytest.mark.slow
def test_corpus_has_every_kind(corpus: tuple[Path, dict[str, str]]) -> None:
    _, expectations = corpus
    assert {f"orient_{n}.jpg" for n in range(1, 9)} <= set(expectations)
    assert "photo.heic" in expectations, "pillow-heif must be installed to test the HEIC path"
    assert sum(1 for e in expectations.values() if e != OK) == 5


@pytest.mark.parametrize("max_edge", [1024, 128])
def test_every_good_file_becomes_an_upright_rgb_jpeg(corpus: tuple[Path, dict[str, str]], max_edge: int) -> None:
    folder, expectations = corpus
    options = PrepareOptions(max_edge=max_edge)
    for name in _ok_names(expectations):
        prepared = prepare(str(folder / name), options)
        assert prepared.data[:3] == b"\xff\xd8\xff", name
        im = _decode(prepared)
        assert im.format == "JPEG" and im.mode == "RGB", name
        assert im.size == (prepared.width, prepared.height), name
        assert max(im.size) <= max_edge, name
        assert im.width > im.height, f"{name}: landscape picture came out {im.size}"
        grey = name.startswith(("gray", "la"))
        red_expected = (83, 83, 83) if grey else (230, 20, 20)
        top_left = im.getpixel((im.width // 40, im.height // 40))
        assert _close(top_left, red_expected, 24), f"{name}: top-left is {top_left}"
        bottom_right = im.getpixel((im.width - 1 - im.width // 40, im.height - 1 - im.height // 40))
        if name in ("rgba.png", "palette_trns.png", "la.png"):
            assert _close(bottom_right, (255, 255, 255), 6), f"{name}: transparency not on white: {bottom_right}"
        elif grey:
            assert _close(bottom_right, (44, 44, 44), 24), f"{name}: {bottom_right}"
        else:
            assert _close(bottom_right, (20, 20, 230), 24), f"{name}: bottom-right is {bottom_right}"


def test_big_jpeg_is_shrunk_to_the_long_edge(corpus: tuple[Path, dict[str, str]]) -> None:
    folder, _ = corpus
    prepared = prepare(str(folder / "big.jpg"))
    assert max(prepared.width, prepared.height) <= 1024
    # 2400/2 = 1200 > 1024 and 2400/4 = 600 is far under: decoded at 1/2, then resampled to 1024.
    assert (prepared.width, prepared.height) == (1024, 683)


def test_draft_scale_lands_at_or_just_under_the_target() -> None:
    from tagger.prepare.decode import draft_scale

    assert draft_scale(4000, 3000, 1024) == 4  # 1000 px: no resampling needed
    assert draft_scale(4032, 3024, 1024) == 4
    assert draft_scale(6000, 4000, 1024) == 4  # 750 would be too small, 1500 then resample
    assert draft_scale(8064, 6048, 1024) == 8
    assert draft_scale(2000, 1500, 1024) == 2  # 1000 px
    assert draft_scale(1800, 1200, 1024) == 1  # 900 px would lose too much
    assert draft_scale(20000, 5, 1024) == 4  # never reduce the short edge to nothing


@pytest.mark.slow
def test_large_jpeg_at_quarter_scale_needs_no_resampling(tmp_path: Path) -> None:
    path = tmp_path / "4000.jpg"
    photo((4000, 3000)).save(path, quality=85)
    prepared = prepare(str(path))
    assert (prepared.width, prepared.height) == (1000, 750)


def test_icc_profile_is_converted_to_srgb(corpus: tuple[Path, dict[str, str]]) -> None:
    folder, _ = corpus
    stored = Image.open(folder / "icc_prophoto.jpg").convert("RGB").getpixel((10, 10))
    # The stored values are far from the displayed red, so ignoring the profile would fail below.
    assert not _close(stored, (230, 20, 20), 40), stored
    im = _decode(prepare(str(folder / "icc_prophoto.jpg")))
    assert _close(im.getpixel((10, 10)), (230, 20, 20), 12)
    assert b"ICC_PROFILE" not in prepare(str(folder / "icc_prophoto.jpg")).data


def test_output_carries_no_metadata(corpus: tuple[Path, dict[str, str]]) -> None:
    folder, _ = corpus
    original = (folder / "metadata.jpg").read_bytes()
    for marker in (b"Exif", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"Photoshop 3.0", b"secret comment text"):
        assert marker in original, marker  # the fixture really has it
    for name in ("metadata.jpg", "gps.jpg", "orient_6.jpg", "icc_prophoto.jpg"):
        data = prepare(str(folder / name), PrepareOptions(send_location=True)).data
        for marker in (b"Exif", b"http://ns.adobe.com/xap", b"ICC_PROFILE", b"Photoshop", b"8BIM", b"secret"):
            assert marker not in data, (name, marker)
        assert b"\xff\xed" not in data and b"\xff\xfe" not in data, name  # no APP13, no COM
        im = _decode(Prepared(data, 0, 0, None))
        assert not im.getexif() and "icc_profile" not in im.info and "comment" not in im.info
        assert not im.info.get("progressive") and not im.info.get("progression")


def test_location_only_when_asked(corpus: tuple[Path, dict[str, str]]) -> None:
    folder, _ = corpus
    path = str(folder / "gps.jpg")
    assert prepare(path).location is None
    lat, lon, alt = prepare(path, PrepareOptions(send_location=True)).location
    assert lat == pytest.approx(GPS_SOUTH_WEST[0], abs=1e-4)
    assert lon == pytest.approx(GPS_SOUTH_WEST[1], abs=1e-4)
    assert alt == pytest.approx(GPS_SOUTH_WEST[2])
    assert prepare(str(folder / "orient_1.jpg"), PrepareOptions(send_location=True)).location is None


def test_failures_carry_the_right_reason(corpus: tuple[Path, dict[str, str]]) -> None:
    folder, expectations = corpus
    for name, expectation in expectations.items():
        if expectation == OK:
            continue
        with pytest.raises(PrepareError) as caught:
            prepare(str(folder / name))
        assert expectation in caught.value.reason, (name, caught.value.reason)


def test_truncated_images_stay_fatal() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_small_pixel_limit_and_missing_file(corpus: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, _ = corpus
    with pytest.raises(PrepareError, match=r"too large to decode safely \(0 MP > 0.01 MP limit\)"):
        prepare(str(folder / "orient_1.jpg"), PrepareOptions(max_pixels=10_000))
    with pytest.raises(PrepareError, match="file not found"):
        prepare(str(tmp_path / "nope.jpg"))
    with pytest.raises(PrepareError, match="not a regular file"):
        prepare(str(tmp_path))
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(PrepareError, match="not a regular file"):
        prepare(str(fifo))


def test_non_utf8_file_name(corpus: tuple[Path, dict[str, str]]) -> None:
    folder, _ = corpus
    path = os.path.join(str(folder), NON_UTF8_NAME)
    assert "\udce9" in path
    assert prepare(path).width == 240


def test_heic_extra_missing(corpus: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = corpus
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    monkeypatch.setattr(formats, "_heif_state", None)  # as in a process where it was never registered
    with pytest.raises(PrepareError, match=r"HEIC support not installed: pip install 'tagger\[heic\]'"):
        prepare(str(folder / "photo.heic"))


def test_raw_extra_missing(
    corpus: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = corpus
    dng = tmp_path / "camera.dng"
    dng.write_bytes((folder / "multipage.tif").read_bytes())
    monkeypatch.setitem(sys.modules, "rawpy", None)
    with pytest.raises(PrepareError, match=r"camera RAW support not installed: pip install 'tagger\[raw\]'"):
        prepare(str(dng))
    # Content decides: a JPEG named .dng is still a JPEG, with or without rawpy.
    renamed = tmp_path / "renamed.dng"
    renamed.write_bytes((folder / "orient_6.jpg").read_bytes())
    assert prepare(str(renamed)).width == 240


def test_raw_that_libraw_rejects(corpus: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    import rawpy  # part of the test environment; a missing one fails here

    assert rawpy.__version__
    fake = tmp_path / "fake.nef"
    fake.write_bytes((corpus[0] / "multipage.tif").read_bytes())
    with pytest.raises(PrepareError, match="not an image|truncated or corrupt"):
        prepare(str(fake))


def test_file_changing_while_read_is_retried_then_fails(
    corpus: tuple[Path, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (corpus[0] / "orient_1.jpg").read_bytes()
    path = tmp_path / "growing.jpg"
    path.write_bytes(source)
    real_read = normalise._read_all
    calls: list[int] = []

    def read_then_append(handle: io.BufferedReader, limit: int) -> bytes:
        data = real_read(handle)
        calls.append(1)
        if len(calls) <= limit:
            with open(path, "ab") as writer:  # another program appends meanwhile
                writer.write(b"\0" * 10)
        return data

    monkeypatch.setattr(normalise, "_read_all", lambda handle: read_then_append(handle, 1))
    assert prepare(str(path)).width == 240
    assert len(calls) == 2
    calls.clear()
    monkeypatch.setattr(normalise, "_read_all", lambda handle: read_then_append(handle, 99))
    with pytest.raises(PrepareError, match="file changed while being read"):
        prepare(str(path))
    assert len(calls) == 2


def test_preparer_in_thread_and_in_processes(corpus: tuple[Path, dict[str, str]]) -> None:
    folder, _ = corpus
    with Preparer(SMALL) as inline:
        expected = inline.prepare(str(folder / "orient_6.jpg"))
    with Preparer(SMALL, processes=2) as pool:
        assert pool.prepare(str(folder / "orient_6.jpg")) == expected
        with pytest.raises(PrepareError, match="not an image"):
            pool.prepare(str(folder / "text.jpg"))
        assert pool.prepare(str(folder / "rgba.png")).width == 128


class _HangingPreparer(Preparer):
    _task = staticmethod(hang)


@pytest.mark.slow
def test_stuck_worker_is_killed_and_replaced(corpus: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, _ = corpus
    stuck = tmp_path / "hang.jpg"
    stuck.write_bytes((folder / "orient_1.jpg").read_bytes())
    options = PrepareOptions(max_edge=128, time_limit=1.0)
    with _HangingPreparer(options, processes=1) as pool:
        assert pool.prepare(str(folder / "rgba.png")).width == 128
        started = time.monotonic()
        with pytest.raises(PrepareError, match="took longer than 1 s to prepare"):
            pool.prepare(str(stuck))
        assert time.monotonic() - started < 5
        # The replacement worker serves the next file.
        assert pool.prepare(str(folder / "la.png")).width == 128


@pytest.mark.parametrize("processes", [0, 1])
def test_a_file_that_cannot_be_read_is_recorded_in_the_planners_words(tmp_path: Path, processes: int) -> None:
    # A real run reads a new file in a worker (read_once), a dry run or a rehash in the planner: one reason for both,
    # and no "cannot read" in front of reasons that are not about reading.
    from tagger.pipeline import plan

    gone = tmp_path / "gone.jpg"
    with Preparer(PrepareOptions(), processes=processes) as preparer:
        with pytest.raises(PrepareError) as caught:
            preparer.read_once(str(gone), lambda digest: "send")
    assert caught.value.reason == "cannot read the file: file not found"
    assert plan._hash(os.fsencode(gone)) == (None, caught.value.reason)
    with Preparer(PrepareOptions(), processes=processes) as preparer:
        with pytest.raises(PrepareError) as caught:
            preparer.read_once(str(tmp_path), lambda digest: "send")
    assert caught.value.reason == "not a regular file"
