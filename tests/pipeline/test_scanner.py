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


def test_links_out_of_the_roots_are_not_followed(tmp_path):
    # Issue 18: a photo linked to a file only root may read was sent and its metadata copied to a readable sidecar.
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "private.jpg").write_bytes(b"\xff\xd8\xff")
    (secret / "inner").mkdir()
    (secret / "inner" / "deep.jpg").write_bytes(b"\xff\xd8\xff")
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "own.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "stolen.jpg").symlink_to(secret / "private.jpg")
    (root / "noext").symlink_to(secret / "private.jpg")
    (root / "away").symlink_to(secret / "inner")
    (root / "sub" / "again.jpg").symlink_to(root / "own.jpg")  # inside the roots: followed
    (root / "inside").symlink_to(root / "sub")  # a folder link inside: walked once
    found = _names(root)
    assert found[os.fsencode(root)] == [b"own.jpg"]
    # sub is walked once, by whichever name came first.
    assert sorted(found.values()) == [[b"again.jpg"], [b"own.jpg"]]
    # Another scanned root counts as inside.
    both = {f.path: sorted(n for n, _, _ in f.files) for f in scan([str(root), str(secret)])}
    assert sorted(both[os.fsencode(root)]) == [b"noext", b"own.jpg", b"stolen.jpg"]
    # Asked for: followed.
    followed = {f.path: sorted(n for n, _, _ in f.files) for f in scan([str(root)], follow_links=True)}
    assert followed[os.fsencode(root)] == [b"noext", b"own.jpg", b"stolen.jpg"]
    assert followed[os.fsencode(root / "away")] == [b"deep.jpg"]


def test_a_root_given_as_a_link_is_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.jpg").write_bytes(b"\xff\xd8\xff")
    (real / "b.jpg").symlink_to(real / "a.jpg")
    (tmp_path / "link").symlink_to(real)
    found = _names(tmp_path / "link")
    assert found == {os.fsencode(tmp_path / "link"): [b"a.jpg", b"b.jpg"]}
