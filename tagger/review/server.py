"""The review page: a loopback HTTP server (standard library) with a token, same-origin checks and a small JSON API.

Every request needs the token printed in the page's address (query
``token`` or header ``X-Tagger-Token``); a request naming another host is
refused too (a DNS-rebinding page cannot borrow the browser's way in).
State-changing requests (POST) need the token in the header, a JSON body
and an ``Origin`` that is the page's own. The server binds loopback only,
unless told ``bind_anywhere``. Captions, keywords and paths are untrusted:
the API sends them as JSON and the page only ever sets them as text, under
a Content-Security-Policy that runs no inline script.
"""

from __future__ import annotations

import dataclasses
import hmac
import ipaddress
import json
import logging
import os
import secrets
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from tagger.display import display
from tagger.errors import LedgerLocked, UsageError
from tagger.ledger.review import AWAITING, DECISIONS, ReviewFilter
from tagger.ledger.store import Ledger
from tagger.review.apply import apply_reviews
from tagger.review.decisions import Decision, prepare
from tagger.review.thumbcache import ThumbCache, default_cache_dir
from tagger.sidecars.writeback import SidecarOptions

__all__ = ["ReviewServer", "is_loopback", "PAGE_SIZE_MAX"]

log = logging.getLogger("tagger.review")

#: The most rows one listing request returns (the page asks for far fewer).
PAGE_SIZE_MAX = 500
#: The largest request body read (a decision is a few hundred bytes).
_BODY_MAX = 1 << 20
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_ASSETS = {"/review.js": "text/javascript; charset=utf-8", "/review.css": "text/css; charset=utf-8"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _asset(name: str) -> str:
    return resources.files("tagger.review").joinpath(name).read_text(encoding="utf-8")


def _json_list(value: str | None) -> list[str]:
    return list(json.loads(value)) if value else []


def _row(r: Any) -> dict[str, Any]:
    """One listing row as the page needs it (paths as display text)."""
    file_id, directory, name, decision, caption, keywords, theirs, their_kw, _digest, copies, ddir, dname = r
    return {
        "id": file_id,
        "path": display(os.path.join(directory, name)),
        "folder": display(directory),
        "decision": decision,
        "caption": theirs if theirs is not None else caption,
        "keywords": _json_list(their_kw if theirs is not None else keywords),
        "machine_caption": caption,
        "machine_keywords": _json_list(keywords),
        "copies": copies - 1,
        "reused_from": display(os.path.join(ddir, dname)) if ddir is not None else None,
    }


class ReviewServer:
    """The review page for one ledger: ``url`` carries the token; ``serve_forever``/``start`` run it."""

    def __init__(
        self,
        ledger_path: str,
        options: SidecarOptions,
        *,
        roots: list[bytes] | None = None,
        locale: str = "en-US",
        host: str = "127.0.0.1",
        port: int = 0,
        bind_anywhere: bool = False,
        thumb_dir: str | None = None,
        token: str | None = None,
    ) -> None:
        if not is_loopback(host) and not bind_anywhere:
            raise UsageError(
                f"the review page binds loopback only; to serve it on {host} (anyone who reaches it and has the "
                "token decides), add --bind-anywhere"
            )
        self.ledger_path = ledger_path
        self.options = options
        self.roots = tuple(roots) if roots else None
        self.locale = locale
        self.ledger = Ledger(ledger_path, locale=locale)
        self.token = token or secrets.token_urlsafe(32)
        self.thumbs = ThumbCache(thumb_dir or default_cache_dir(ledger_path))
        self._apply_lock = threading.Lock()
        self.httpd = _Server((host, port), _handler_for(self))
        self.port = self.httpd.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.origin = f"http://{shown}:{self.port}"
        self.hosts = {f"{shown}:{self.port}"}
        if is_loopback(host):
            self.hosts |= {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}"}
        self.url = f"{self.origin}/?token={self.token}"
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Serve until ``close`` (or Ctrl-C)."""
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> ReviewServer:
        """Serve from a background thread (tests, the benchmark)."""
        self._thread = threading.Thread(target=self.serve_forever, name="review-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the ledger."""
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        self.ledger.close()

    def __enter__(self) -> ReviewServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the API does ----------------------------------------------------------

    def filter_of(self, query: dict[str, str]) -> ReviewFilter:
        """The listing filter a query (or a POST body's ``filter``) asks for."""
        decision = query.get("decision") or None
        if decision is not None and decision not in DECISIONS:
            raise ValueError(f"unknown status {decision!r}")
        reused = {"yes": True, "no": False}.get(query.get("reused", ""))
        folder = query.get("folder") or None
        return ReviewFilter(
            folder=os.fsencode(folder) if folder else None,
            decision=decision,
            text=(query.get("text") or "").strip()[:200],
            reused=reused,
            roots=self.roots,
        )

    def listing(self, query: dict[str, str]) -> dict[str, Any]:
        """One page of held photos, the filter's total and its counts by decision."""
        where = self.filter_of(query)
        offset = max(0, int(query.get("offset") or 0))
        limit = min(PAGE_SIZE_MAX, max(1, int(query.get("limit") or 50)))
        counts = self.ledger.reviews.count(where)
        rows = [_row(r) for r in self.ledger.reviews.page(where, offset, limit)]
        return {"total": sum(counts.values()), "counts": counts, "offset": offset, "rows": rows}

    def folders(self) -> list[str]:
        """The folders holding photos held for review (display text; a folder filter sends it back)."""
        return [display(f) for f in self.ledger.reviews.folders()]

    def photo(self, file_id: int) -> dict[str, Any] | None:
        """What the page shows beside one photo: what it already carried, and its copies."""
        from tagger.sidecars.readers import show

        row = self.ledger.reviews.photo(file_id)
        if row is None:
            return None
        directory, name, _root, _digest, decision, copies = row
        path = os.fsdecode(os.path.join(directory, name))
        carried: dict[str, Any] = {"description": "", "keywords": []}
        try:
            for shown in show(path).values():
                if shown.description or shown.keywords:
                    carried = {"description": shown.description, "keywords": shown.keywords}
                    break
        except Exception as exc:  # an unreadable photo still gets its decision
            log.debug("%s: cannot read its metadata: %s", path, exc)
        return {
            "id": file_id,
            "decision": decision,
            "carried": carried,
            "copies": [display(bytes.fromhex(c)) for c in json.loads(copies or "[]")],
        }

    def thumbnail(self, file_id: int) -> bytes | None:
        """The photo's thumbnail (made once, then read from the cache)."""
        row = self.ledger.reviews.photo(file_id)
        if row is None:
            return None
        return self.thumbs.get(os.fsdecode(os.path.join(row.dir, row.name)), row.content_hash)

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        """Record one decision for the photos ``ids`` (an edit: their caption and keywords); returns their rows."""
        ids = [int(i) for i in body.get("ids") or ()]
        decision = str(body.get("decision") or "")
        keywords = body.get("keywords")
        if keywords is not None:
            keywords = tuple(str(k) for k in keywords)[:200]
        caption = body.get("caption")
        rows = prepare(
            [Decision(i, decision, str(caption) if caption is not None else None, keywords) for i in ids],
            self.options.keyword_rules,
        )
        n = self.ledger.reviews.decide_all(rows)
        return {"changed": n, "rows": [self._one(i) for i in ids]}

    def _one(self, file_id: int) -> dict[str, Any] | None:
        found = self.ledger.reviews.page(ReviewFilter(file_id=file_id), 0, 1)
        return _row(found[0]) if found else None

    def approve_shown(self, body: dict[str, Any]) -> dict[str, Any]:
        """Approve every photo the filter shows that still awaits a decision (edits and rejections stay)."""
        where = self.filter_of({k: str(v) for k, v in (body.get("filter") or {}).items()})
        ids = self.ledger.reviews.ids(dataclasses.replace(where, decision=AWAITING))
        n = self.ledger.reviews.decide(ids, "approved", only_awaiting=True)
        return {"changed": n}

    def apply(self) -> dict[str, Any]:
        """Write the approved and edited captions into sidecars (the run lock held meanwhile)."""
        with self._apply_lock:
            with Ledger(self.ledger_path, locale=self.locale) as ledger:
                ledger.acquire()
                result = apply_reviews(ledger, self.options, list(self.roots) if self.roots else None)
        return {"decided": result.decided, "written": result.written, "failed": result.failed}


class _Server(ThreadingHTTPServer):
    """A threading server whose clients may leave mid-answer (a page reloaded while thumbnails load)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler_for(server: ReviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        review = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    """Routes, checks and answers; every answer carries the security headers."""

    review: ReviewServer
    server_version = "tagger-review"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("review page: " + format, *args)

    # -- answers --------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, cache: str = "no-store") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")  # the token is in the address
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", cache)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _refuse(self, status: int, message: str) -> None:
        self._send(status, message.encode("utf-8"), "text/plain; charset=utf-8")

    # -- checks ---------------------------------------------------------------------

    def _token_ok(self, query: dict[str, str], *, header_only: bool) -> bool:
        given = self.headers.get("X-Tagger-Token") or ("" if header_only else query.get("token", ""))
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.review.token.encode("ascii"))

    def _host_ok(self) -> bool:
        return (self.headers.get("Host") or "") in self.review.hosts

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site != "same-origin":
            return False
        return origin is not None and origin in {f"http://{h}" for h in self.review.hosts}

    def _parse(self) -> tuple[str, dict[str, str]]:
        url = urllib.parse.urlsplit(self.path)
        return url.path, dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))

    # -- methods --------------------------------------------------------------------

    def do_GET(self) -> None:
        path, query = self._parse()
        if not self._host_ok():
            return self._refuse(403, "refused: this page answers only at its own address")
        if not self._token_ok(query, header_only=False):
            return self._refuse(403, "refused: open the address `tagger review` printed (it carries the token)")
        try:
            self._get(path, query)
        except ValueError as exc:
            self._json(400, {"error": str(exc)})

    do_HEAD = do_GET

    def _get(self, path: str, query: dict[str, str]) -> None:
        review = self.review
        if path == "/":
            page = _asset("page.html").replace("{{TOKEN}}", review.token)
            return self._send(200, page.encode("utf-8"), "text/html; charset=utf-8")
        if path in _ASSETS:
            return self._send(200, _asset(path[1:]).encode("utf-8"), _ASSETS[path], cache="private, max-age=3600")
        if path == "/api/photos":
            return self._json(200, review.listing(query))
        if path == "/api/folders":
            return self._json(200, review.folders())
        if path.startswith("/api/photo/"):
            found = review.photo(int(path.rsplit("/", 1)[1]))
            return self._json(200, found) if found is not None else self._json(404, {"error": "not held"})
        if path.startswith("/thumb/"):
            data = review.thumbnail(int(path.rsplit("/", 1)[1]))
            if data is None:
                return self._refuse(404, "no thumbnail")
            return self._send(200, data, "image/jpeg", cache="private, max-age=86400")
        self._refuse(404, "not found")

    def do_POST(self) -> None:
        path, query = self._parse()
        if not self._host_ok():
            return self._refuse(403, "refused: this page answers only at its own address")
        if not self._token_ok(query, header_only=True):
            return self._refuse(403, "refused: a change needs the page's token")
        if not self._same_origin():
            return self._refuse(403, "refused: a change must come from the review page itself")
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._refuse(415, "refused: a change is sent as JSON")
        length = int(self.headers.get("Content-Length") or 0)
        if length > _BODY_MAX:
            return self._refuse(413, "refused: too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("a change is a JSON object")
            if path == "/api/decide":
                return self._json(200, self.review.decide(body))
            if path == "/api/approve-shown":
                return self._json(200, self.review.approve_shown(body))
            if path == "/api/apply":
                return self._json(200, self.review.apply())
        except LedgerLocked as exc:
            return self._json(409, {"error": str(exc)})
        except (ValueError, TypeError) as exc:
            return self._json(400, {"error": str(exc)})
        self._refuse(404, "not found")
