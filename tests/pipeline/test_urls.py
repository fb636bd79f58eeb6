"""Remote images: `tagger run --urls FILE` submits URLs, writes the CSV, resumes like files."""

from __future__ import annotations

import csv
import http.server
import threading
from functools import partial

import pytest
from helpers import config_for, make_photo, run_with

from tagger.cli import _csv_exporter
from tagger.errors import UsageError
from tagger.pipeline.urls import read_urls


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "www"
    for i in range(3):
        make_photo(root / f"r{i}.jpg", 500 + i)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_list_forms(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_text("# my bucket\nhttps://x/1.jpg\n\nhttps://x/2.jpg\nhttps://x/1.jpg\n")
    assert read_urls(str(plain)) == ["https://x/1.jpg", "https://x/2.jpg"]
    table = tmp_path / "b.csv"
    table.write_text('id,URL,title\n1,https://x/a.jpg,A\n2,https://x/b.jpg,"B, too"\n')
    assert read_urls(str(table)) == ["https://x/a.jpg", "https://x/b.jpg"]
    bad = tmp_path / "c.txt"
    bad.write_text("ftp://x/a.jpg\n")
    with pytest.raises(UsageError, match="no 'url' column|not an http"):
        read_urls(str(bad))


@pytest.mark.slow
def test_remote_images_are_captioned_once_into_the_csv(emulator, web, tmp_path):
    urls = [f"{web}/r{i}.jpg" for i in range(3)]
    out = tmp_path / "remote.csv"
    config = config_for(emulator, tmp_path, csv=str(out))
    result = run_with(emulator, config, [], urls=urls, export=_csv_exporter(config))
    assert result.exit_code == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["path"] for r in rows] == urls
    assert all(r["status"] == "completed" and r["caption"] for r in rows)
    assert emulator.counters()["remote_submissions"] == 3
    again = run_with(emulator, config, [], urls=urls, export=_csv_exporter(config))
    assert again.exit_code == 0 and again.tally.submitted == 0
    assert emulator.counters()["remote_submissions"] == 3
    assert not list(tmp_path.rglob("*.xmp"))
