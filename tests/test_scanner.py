"""The scanner: candidates by name or content, hidden skipped, no symlink loops."""

from __future__ import annotations

import os

from tagger.pipeline.scan import scan


def _names(root) -> dict[bytes, list[bytes]]:
    return {f.path: sorted(n for n, _, _ in f.files) for f in scan([str(root)])}


def test_candidates_by_extension_or_magic(tmp_path):
    (tmp_path / "a.JPG").write_bytes(b"\xff\xd8\xff\xe0junk")
    (tmp_path / "noext").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "a.JPG.xmp").write_text("<x/>")
    (tmp_path / "data.bin").write_bytes(b"BM hello this is not a bitmap")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "._a.JPG").write_bytes(b"\0\5\26\7")
    found = _names(tmp_path)
    assert found == {os.fsencode(tmp_path): [b"a.JPG", b"noext"]}


def test_hidden_folders_skipped_and_sizes_reported(tmp_path):
    (tmp_path / ".thumbs").mkdir()
    (tmp_path / ".thumbs" / "t.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n12345")
    folders = {f.path: f for f in scan([str(tmp_path)])}
    assert set(folders) == {os.fsencode(tmp_path), os.fsencode(tmp_path / "sub")}
    ((name, size, mtime_ns),) = folders[os.fsencode(tmp_path / "sub")].files
    assert (name, size) == (b"b.png", 13)
    assert mtime_ns == os.stat(tmp_path / "sub" / "b.png").st_mtime_ns


def test_symlink_loop_is_walked_once(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"\xff\xd8\xff")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    folders = list(scan([str(tmp_path)]))
    assert len(folders) == 2
    assert sum(len(f.files) for f in folders) == 1


def test_non_utf8_names_survive(tmp_path):
    name = b"caf\xe9.jpg"
    with open(os.path.join(os.fsencode(tmp_path), name), "wb") as f:
        f.write(b"\xff\xd8\xff")
    (folder,) = scan([os.fsencode(tmp_path)])
    assert [n for n, _, _ in folder.files] == [name]


def test_a_single_file_root_is_an_incomplete_folder(tmp_path):
    p = tmp_path / "one.jpg"
    p.write_bytes(b"\xff\xd8\xff")
    (tmp_path / "two.jpg").write_bytes(b"\xff\xd8\xff")
    (folder,) = scan([str(p)])
    assert folder.complete is False
    assert [n for n, _, _ in folder.files] == [b"one.jpg"]
