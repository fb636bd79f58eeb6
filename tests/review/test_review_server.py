"""The review page's server: the token, same-origin checks, loopback only, escaping, decisions at once, thumbnails once."""

from __future__ import annotations

import http.client
import json
import sqlite3
import urllib.parse

import pytest
from review_corpus import HOSTILE, held_archive

from tagger.errors import UsageError
from tagger.review.server import ReviewServer
from tagger.sidecars.writeback import SidecarOptions


@pytest.fixture
def server(emulator, photos, tmp_path):
    config = held_archive(emulator, photos, tmp_path, hostile=HOSTILE)
    with ReviewServer(config.ledger_path, SidecarOptions(), thumb_dir=str(tmp_path / "thumbs")) as srv:
        yield srv


def request(srv: ReviewServer, method: str, path: str, body: object = None, headers: dict | None = None):
    """One request to ``srv``; returns (status, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Host": f"127.0.0.1:{srv.port}", **(headers or {})})
        answer = conn.getresponse()
        return answer.status, answer.read(), answer
    finally:
        conn.close()


def token_q(srv: ReviewServer, **params) -> str:
    return urllib.parse.urlencode({"token": srv.token, **params})


def post_headers(srv: ReviewServer, **extra) -> dict:
    return {
        "Content-Type": "application/json",
        "X-Tagger-Token": srv.token,
        "Origin": f"http://127.0.0.1:{srv.port}",
        **extra,
    }


def decisions(srv: ReviewServer) -> list[tuple]:
    con = sqlite3.connect(srv.ledger_path)
    try:
        return con.execute("SELECT file_id, decision, caption FROM reviews ORDER BY file_id").fetchall()
    finally:
        con.close()


def test_every_request_without_the_token_is_refused(server):
    assert server.url.startswith(f"http://127.0.0.1:{server.port}/?token=") and len(server.token) >= 40
    for path in ("/", "/api/photos", "/review.js", "/thumb/1", "/api/folders", "/?token=wrong"):
        status, body, _ = request(server, "GET", path)
        assert status == 403, path
        assert b"caption" not in body.lower() or b"refused" in body
    status, body, answer = request(server, "GET", "/?" + token_q(server))
    assert status == 200 and server.token.encode() in body
    assert "script-src 'self'" in answer.getheader("Content-Security-Policy")
    assert answer.getheader("Referrer-Policy") == "no-referrer"
    # Another Host (a DNS-rebinding page borrowing the browser) is refused even with the token.
    status, _, _ = request(server, "GET", "/?" + token_q(server), headers={"Host": f"evil.example:{server.port}"})
    assert status == 403


def test_a_cross_origin_or_tokenless_post_is_refused_and_changes_nothing(server):
    before = decisions(server)
    listing = json.loads(request(server, "GET", "/api/photos?" + token_q(server))[1])
    target = listing["rows"][0]["id"]
    body = {"ids": [target], "decision": "approved"}
    refused = [
        post_headers(server, Origin="http://evil.example"),
        post_headers(server, Origin="null"),
        {k: v for k, v in post_headers(server).items() if k != "Origin"},
        {k: v for k, v in post_headers(server).items() if k != "X-Tagger-Token"},
        post_headers(server, **{"Sec-Fetch-Site": "cross-site"}),
    ]
    for headers in refused:
        status, _, _ = request(server, "POST", "/api/decide", body, headers)
        assert status == 403, headers
    # The token in the query is not enough for a change (a form or an <img> could carry it).
    no_header = {k: v for k, v in post_headers(server).items() if k != "X-Tagger-Token"}
    status, _, _ = request(server, "POST", "/api/decide?" + token_q(server), body, no_header)
    assert status == 403
    status, _, _ = request(server, "POST", "/api/decide", body, post_headers(server, **{"Content-Type": "text/plain"}))
    assert status == 415
    assert decisions(server) == before
    status, answer, _ = request(server, "POST", "/api/decide", body, post_headers(server))
    assert status == 200 and json.loads(answer)["changed"] == 1
    assert [d for f, d, _ in decisions(server) if f == target] == ["approved"]  # recorded at once


def test_hostile_text_travels_as_json_and_the_page_holds_no_data(server):
    status, body, _ = request(server, "GET", "/?" + token_q(server))
    assert HOSTILE.encode() not in body and b"onerror" not in body
    listing = json.loads(request(server, "GET", "/api/photos?" + token_q(server, text="onerror"))[1])
    assert [r["caption"] for r in listing["rows"]] == [HOSTILE]
    assert listing["rows"][0]["keywords"] == ["<b>bold</b>"]
    js = request(server, "GET", "/review.js?" + token_q(server))[1].decode()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "document.write" not in js


def test_filters_edit_and_thumbnails_made_once(server, photos):
    q = lambda **p: json.loads(request(server, "GET", "/api/photos?" + token_q(server, **p))[1])  # noqa: E731
    assert q()["total"] == 6
    sub = str(photos / "sub")
    assert {r["folder"] for r in q(folder=sub)["rows"]} == {sub} and q(folder=sub)["total"] == 3
    assert q(reused="yes")["total"] == 0
    first = q()["rows"][0]["id"]
    status, answer, _ = request(
        server,
        "POST",
        "/api/decide",
        {"ids": [first], "decision": "edited", "caption": "A cat on a sofa"},
        post_headers(server),
    )
    row = json.loads(answer)["rows"][0]
    assert status == 200 and row["decision"] == "edited" and row["caption"] == "A cat on a sofa"
    assert {"cat", "sofa"} <= set(row["keywords"])  # derived again from the person's text
    assert q(decision="edited")["total"] == 1 and q(decision="awaiting")["total"] == 5
    status, answer, _ = request(
        server, "POST", "/api/decide", {"ids": [first], "decision": "edited", "caption": "   "}, post_headers(server)
    )
    assert status == 400 and b"empty" in answer
    for _ in range(3):
        status, jpeg, answer = request(server, "GET", f"/thumb/{first}?" + token_q(server))
        assert status == 200 and jpeg[:2] == b"\xff\xd8" and answer.getheader("Content-Type") == "image/jpeg"
    assert server.thumbs.made == 1


def test_binding_beyond_loopback_needs_to_be_asked_for(emulator, photos, tmp_path):
    config = held_archive(emulator, photos, tmp_path)
    with pytest.raises(UsageError, match="--bind-anywhere"):
        ReviewServer(config.ledger_path, SidecarOptions(), host="0.0.0.0")
    srv = ReviewServer(config.ledger_path, SidecarOptions(), host="0.0.0.0", bind_anywhere=True)
    try:
        assert srv.httpd.server_address[0] == "0.0.0.0"
    finally:
        srv.close()


@pytest.mark.slow
def test_the_cli_prints_a_tokened_loopback_address_and_run_hold_writes_nothing(photos, tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    ledger = str(tmp_path / "ledger.sqlite")
    base = [sys.executable, "-P", "-m", "tagger"]
    done = subprocess.run(
        [*base, "run", "--emulator", "--emulator-latency", "0.05-0.1", "--hold", "--ledger", ledger, str(photos)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "6 captions await review" in done.stdout
    assert list(photos.rglob("*.xmp")) == []
    proc = subprocess.Popen(
        [*base, "review", "--no-browser", "--ledger", ledger], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("review page: http://127.0.0.1:")
        url = urllib.parse.urlsplit(line.split(": ", 1)[1].strip())
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        conn.request("GET", "/api/photos?" + url.query)
        answer = conn.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["total"] == 6
        conn.request("GET", "/api/photos")
        assert conn.getresponse().status == 403
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    done = subprocess.run(
        [*base, "review", "--no-browser", "--host", "0.0.0.0", "--ledger", ledger],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2 and "--bind-anywhere" in done.stderr
