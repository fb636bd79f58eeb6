"""Tests for tagger.exports.writer: CSV profiles, JSONL, formula guard, atomic writes, exiftool round trip."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from tagger.errors import TaggerError
from tagger.exports.records import Record
from tagger.exports.writer import PROFILES, ExportError, guard_cell, write_export


def rec(relpath: str, root: Path | str = "/photos", **kw) -> Record:
    """A record for ``relpath`` under ``root`` with sensible defaults."""
    kw.setdefault("status", "completed")
    return Record(path=os.path.join(str(root), relpath), relpath=relpath, filename=os.path.basename(relpath), **kw)


def read_csv(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    """The file's rows as dicts keyed by the header row."""
    with open(path, encoding=encoding, newline="") as f:
        return list(csv.DictReader(f))


SAMPLE = [
    rec(
        "a/IMG_0001.JPG",
        caption="red barn, wheat field",
        keywords=("barn", "wheat field"),
        flags=("nsfw-checked",),
        content_hash="h1",
        token="t1",
        endpoint="http://127.0.0.1:1/",
        submitted_at="2026-01-15T10:00:00Z",
        settled_at="2026-01-15T10:00:05Z",
        modified_at="2025-12-01T08:00:00Z",
        size=1234,
    ),
    rec("b/IMG_0001.JPG", caption="a grey cat on a sofa", keywords=("cat", "sofa")),
    rec("c/broken.jpg", status="failed", reason="unreadable"),
    rec("c/slow.jpg", status="timeout", reason="timeout"),
]


def test_default_profile_columns_and_values(tmp_path: Path) -> None:
    dest = tmp_path / "out.csv"
    assert write_export(SAMPLE, str(dest)) == 4
    raw = dest.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" not in raw
    rows = read_csv(dest)
    header = list(rows[0])
    for name in (
        "path",
        "absolute_path",
        "filename",
        "caption",
        "keywords",
        "status",
        "reason",
        "flags",
        "content_hash",
        "token",
        "endpoint",
        "submitted_at",
        "settled_at",
        "modified_at",
    ):
        assert name in header
    first = rows[0]
    assert first["path"] == "a/IMG_0001.JPG"
    assert first["absolute_path"] == "/photos/a/IMG_0001.JPG"
    assert first["filename"] == "IMG_0001.JPG"
    assert first["caption"] == "red barn, wheat field"
    assert first["keywords"] == "barn; wheat field"
    assert first["flags"] == "nsfw-checked"
    assert (first["token"], first["size"], first["settled_at"]) == ("t1", "1234", "2026-01-15T10:00:05Z")
    assert rows[2]["status"] == "failed" and rows[2]["reason"] == "unreadable" and rows[2]["caption"] == ""


def test_every_cell_is_quoted(tmp_path: Path) -> None:
    dest = tmp_path / "out.csv"
    write_export(SAMPLE[:1], str(dest))
    lines = dest.read_text(encoding="utf-8").split("\n")
    for line in lines[:2]:
        cells = line.split('","')
        assert line.startswith('"') and line.endswith('"')
        assert len(cells) == len(PROFILES["default"].columns)


def test_same_name_in_two_folders_keeps_its_own_caption(tmp_path: Path) -> None:
    dest = tmp_path / "out.csv"
    write_export(SAMPLE[:2], str(dest))
    rows = {r["path"]: r for r in read_csv(dest)}
    assert rows["a/IMG_0001.JPG"]["caption"] == "red barn, wheat field"
    assert rows["b/IMG_0001.JPG"]["caption"] == "a grey cat on a sofa"
    assert rows["a/IMG_0001.JPG"]["filename"] == rows["b/IMG_0001.JPG"]["filename"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\nx", "'\nx"),
        ("a=b", "a=b"),
        ("", ""),
        (" =x", " =x"),
        ("cat", "cat"),
    ],
)
def test_guard_cell(value: str, expected: str) -> None:
    assert guard_cell(value) == expected


EVIL = rec("e/evil.jpg", caption="=cmd|' /C calc'!A0", keywords=("-rm", "@x"), reason=None)


def test_formula_guard_on_by_default_and_in_excel(tmp_path: Path) -> None:
    write_export([EVIL], str(tmp_path / "d.csv"))
    row = read_csv(tmp_path / "d.csv")[0]
    assert row["caption"] == "'=cmd|' /C calc'!A0"
    assert row["keywords"] == "'-rm; @x"
    write_export([EVIL], str(tmp_path / "x.csv"), profile="excel")
    assert read_csv(tmp_path / "x.csv", "utf-8-sig")[0]["caption"].startswith("'=")


def test_formula_guard_off_for_importers_and_overridable(tmp_path: Path) -> None:
    for name in ("resourcespace", "canto", "aem", "exiftool"):
        dest = tmp_path / f"{name}.csv"
        write_export([EVIL], str(dest), profile=name)
        cells = list(read_csv(dest)[0].values())
        assert "=cmd|' /C calc'!A0" in cells, name
        assert "'=cmd" not in dest.read_text(encoding="utf-8")
    write_export([EVIL], str(tmp_path / "off.csv"), formula_guard=False)
    assert read_csv(tmp_path / "off.csv")[0]["caption"] == "=cmd|' /C calc'!A0"
    write_export([EVIL], str(tmp_path / "on.csv"), profile="canto", formula_guard=True)
    assert read_csv(tmp_path / "on.csv")[0]["Description"] == "'=cmd|' /C calc'!A0"


def test_excel_has_bom_and_crlf(tmp_path: Path) -> None:
    dest = tmp_path / "x.csv"
    records = [rec("a/ü.jpg", caption="line one\nline two", keywords=("Ärger",))]
    write_export(records, str(dest), profile="excel")
    raw = dest.read_bytes()
    assert raw.startswith(b'\xef\xbb\xbf"path"')
    assert raw.count(b"\r\n") == 2  # header and one row; the newline inside the caption stays a cell value
    rows = read_csv(dest, "utf-8-sig")
    assert rows[0]["caption"] == "line one\nline two"
    assert rows[0]["keywords"] == "Ärger"


def test_resourcespace_profile(tmp_path: Path) -> None:
    dest = tmp_path / "rs.csv"
    records = [*SAMPLE, rec("d/x.jpg", caption="c", keywords=("one, two", "three"))]
    assert write_export(records, str(dest), profile="resourcespace") == 3  # completed rows only
    raw = dest.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r\n" not in raw
    assert raw.splitlines()[0] == b'"Original filename","Caption","Keywords","Path"'
    rows = read_csv(dest)
    assert rows[0] == {
        "Original filename": "IMG_0001.JPG",
        "Caption": "red barn, wheat field",
        "Keywords": "barn, wheat field",
        "Path": "a/IMG_0001.JPG",
    }
    # A comma inside a keyword would split it into two on import.
    assert rows[2]["Keywords"] == "one two, three"


def test_canto_profile(tmp_path: Path) -> None:
    dest = tmp_path / "canto.csv"
    write_export(SAMPLE, str(dest), profile="canto")
    rows = read_csv(dest)
    assert list(rows[0])[0] == "File Name"
    assert [r["File Name"] for r in rows] == ["IMG_0001.JPG", "IMG_0001.JPG"]
    assert [r["Path"] for r in rows] == ["a/IMG_0001.JPG", "b/IMG_0001.JPG"]
    assert rows[1]["Keywords"] == "cat;sofa"
    assert rows[1]["Description"] == "a grey cat on a sofa"


def test_aem_profile(tmp_path: Path) -> None:
    dest = tmp_path / "aem.csv"
    records = [rec("a/b c/IMG 1.jpg", caption="x", keywords=("left|right", "sky")), SAMPLE[1], SAMPLE[2]]
    assert write_export(records, str(dest), profile="aem") == 2
    rows = read_csv(dest)
    assert list(rows[0]) == [
        "assetPath",
        "dc:title {{String}}",
        "dc:description {{String}}",
        "dc:subject {{String: MULTI}}",
    ]
    assert rows[0]["assetPath"] == "/content/dam/a/b c/IMG 1.jpg"
    assert rows[0]["dc:subject {{String: MULTI}}"] == "left right|sky"
    assert rows[1]["dc:description {{String}}"] == "a grey cat on a sofa"
    write_export(records, str(dest), profile="aem", aem_root="/content/dam/archive/")
    assert read_csv(dest)[1]["assetPath"] == "/content/dam/archive/b/IMG_0001.JPG"


def test_jsonl_has_all_fields_unguarded(tmp_path: Path) -> None:
    dest = tmp_path / "out.jsonl"
    records = [*SAMPLE, EVIL, rec("z/ß.jpg", caption="Straße ☃", extra={"n": 1})]
    assert write_export(records, str(dest), fmt="jsonl") == 6
    lines = dest.read_text(encoding="utf-8").splitlines()
    objs = [json.loads(line) for line in lines]
    assert objs[0]["keywords"] == ["barn", "wheat field"]
    assert objs[0]["relpath"] == "a/IMG_0001.JPG" and objs[0]["path"] == "/photos/a/IMG_0001.JPG"
    assert objs[0]["size"] == 1234 and objs[2]["reason"] == "unreadable"
    assert objs[3]["caption"] is None
    assert objs[4]["caption"] == "=cmd|' /C calc'!A0"
    assert objs[5]["caption"] == "Straße ☃" and objs[5]["extra"] == {"n": 1}
    assert "Straße ☃" in lines[5]  # UTF-8, not \u escapes


def test_nul_is_dropped_and_lone_surrogates_replaced(tmp_path: Path) -> None:
    dest = tmp_path / "out.csv"
    write_export([rec("a.jpg", caption="a\x00b"), rec("b\udcff.jpg", caption="c")], str(dest))
    rows = read_csv(dest)
    assert rows[0]["caption"] == "ab"
    assert rows[1]["path"] == "b?.jpg"


def test_unknown_profile_format_option(tmp_path: Path) -> None:
    assert issubclass(ExportError, TaggerError) and ExportError.exit_code == 2
    with pytest.raises(ExportError, match="profile 'bynder'.*default"):
        write_export(SAMPLE, str(tmp_path / "o.csv"), profile="bynder")
    with pytest.raises(ExportError, match="format 'xlsx'"):
        write_export(SAMPLE, str(tmp_path / "o.csv"), fmt="xlsx")
    with pytest.raises(ExportError, match="aem_rooot"):
        write_export(SAMPLE, str(tmp_path / "o.csv"), aem_rooot="/x")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot write"):
        write_export(SAMPLE, str(tmp_path / "missing" / "o.csv"))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: use a path that is a directory instead
            target = tmp_path / "isdir"
            target.mkdir()
            with pytest.raises(ExportError, match="cannot write"):
                write_export(SAMPLE, str(target))
            assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
        else:
            with pytest.raises(ExportError, match="cannot write"):
                write_export(SAMPLE, str(ro / "o.csv"))
    finally:
        ro.chmod(0o755)


def test_failure_midway_leaves_old_file_and_no_temp(tmp_path: Path) -> None:
    dest = tmp_path / "out.csv"
    dest.write_text("old\n")

    def broken():
        yield SAMPLE[0]
        raise RuntimeError("ledger went away")

    with pytest.raises(RuntimeError, match="ledger went away"):
        write_export(broken(), str(dest))
    assert dest.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.slow
def test_streams_without_holding_rows(tmp_path: Path) -> None:
    n = 60_000

    def many():
        for i in range(n):
            yield rec(f"d{i % 97}/img_{i:06d}.jpg", caption=f"caption number {i} " * 4, keywords=("a", "b", str(i)))

    tracemalloc.start()
    try:
        assert write_export(many(), str(tmp_path / "big.csv")) == n
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = (tmp_path / "big.csv").stat().st_size
    assert size > 10_000_000
    assert peak < 2_000_000, f"peak {peak} bytes for a {size}-byte export"


def noisy_jpeg(path: Path, seed: int) -> None:
    """A small JPEG of random noise (real pixels for exiftool to carry)."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (64, 48), bytes(rng.randrange(256) for _ in range(64 * 48 * 3)))
    img.save(path, "JPEG", quality=80)


def test_exiftool_round_trip(tmp_path: Path) -> None:
    originals = tmp_path / "originals"
    originals.mkdir()
    for i in range(4):
        noisy_jpeg(originals / f"src{i}.jpg", i)
    work = tmp_path / "copies"
    for sub in ("a", "b", "c"):
        (work / sub).mkdir(parents=True)
    shutil.copy(originals / "src0.jpg", work / "a" / "IMG_0001.JPG")
    shutil.copy(originals / "src1.jpg", work / "b" / "IMG_0001.JPG")
    shutil.copy(originals / "src2.jpg", work / "c" / "Straße, 1.jpg")
    shutil.copy(originals / "src3.jpg", work / "c" / "timeout.jpg")
    before = {p.name: p.read_bytes() for p in originals.iterdir()}
    long_caption = "a very long caption " * 20
    records = [
        rec("a/IMG_0001.JPG", work, caption='red barn, "wheat" field', keywords=("barn", "wheat field")),
        rec("b/IMG_0001.JPG", work, caption="-5 degrees: a grey cat", keywords=("cat", "=sofa")),
        rec("c/Straße, 1.jpg", work, caption=long_caption.strip(), keywords=("Straße",)),
        rec("c/timeout.jpg", work, status="timeout", reason="timeout"),
    ]
    csv_path = tmp_path / "exif.csv"
    assert write_export(records, str(csv_path), profile="exiftool") == 3
    run = subprocess.run(
        ["exiftool", "-csv=" + str(csv_path), "-sep", "; ", "-overwrite_original", "-r", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "3 image files updated" in run.stdout + run.stderr, run.stdout + run.stderr
    out = subprocess.run(
        [
            "exiftool",
            "-j",
            "-r",
            "-XMP-dc:Description",
            "-XMP-dc:Subject",
            "-XMP-iptcCore:AltTextAccessibility",
            str(work),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    got = {Path(d["SourceFile"]).relative_to(work).as_posix(): d for d in json.loads(out.stdout)}

    def subjects(d: dict) -> list[str]:
        s = d.get("Subject", [])
        return s if isinstance(s, list) else [s]

    assert got["a/IMG_0001.JPG"]["Description"] == 'red barn, "wheat" field'
    assert subjects(got["a/IMG_0001.JPG"]) == ["barn", "wheat field"]
    assert got["b/IMG_0001.JPG"]["Description"] == "-5 degrees: a grey cat"
    assert subjects(got["b/IMG_0001.JPG"]) == ["cat", "=sofa"]
    assert got["b/IMG_0001.JPG"]["AltTextAccessibility"] == "-5 degrees: a grey cat"
    straße = got["c/Straße, 1.jpg"]
    assert straße["Description"] == long_caption.strip()
    assert subjects(straße) == ["Straße"]
    alt = straße["AltTextAccessibility"]
    assert len(alt) <= 250 and alt.endswith("…") and long_caption.startswith(alt[:-1])
    assert "Description" not in got["c/timeout.jpg"]
    # exiftool rewrote the copies, and only them.
    assert {p.name: p.read_bytes() for p in originals.iterdir()} == before
    assert (work / "a" / "IMG_0001.JPG").read_bytes() != before["src0.jpg"]
