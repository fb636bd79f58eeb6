"""A CloudSight-compatible HTTP server on loopback, with latency, credits and injected faults.

Routes (each also under /v1, and the old host's names):

    POST /v1/images                  submit (multipart, form-encoded or JSON)
    GET  /v1/images/{token}          poll   (old: /image_responses/{token})
    POST /v1/images/{token}/repost   repost (old: /image_requests/{token}/repost)
    POST /image_requests             submit, old name

Choices where the service is silent: an unknown token polls as 200
``{"status": "not found"}``; reposting an unknown token answers 404; credits
never go below 0 and an empty account keeps accepting; uploads are not kept,
so a job's ``url`` for an upload does not serve the image; remote URLs are
fetched only from loopback hosts, since the emulator is for offline use;
a fractional ``Faults.retry_after`` goes out as a decimal Retry-After.
OAuth1 signatures are verified as the service does: the base string holds
the non-file fields of a multipart upload too (see ``_http.check_auth``).
"""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

from ._http import BadBody, check_auth, parse_body
from ._persist import StateFile
from ._state import MAX_TTL, Account, Faults
from ._vision import Analysis, InvalidImage, analyse

__all__ = ["Emulator", "Faults", "parse_latency", "serve"]

_MAX_BODY = 50 * 1024 * 1024
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_SUBMIT = re.compile(r"^(?:/v1)?/(?:images|image_requests)$")
_POLL = re.compile(r"^(?:/v1)?/(?:images|image_responses)/([A-Za-z0-9_-]+)$")
_REPOST = re.compile(r"^(?:/v1)?/(?:images|image_requests)/([A-Za-z0-9_-]+)/repost$")


def parse_latency(text: str) -> tuple[float, float]:
    """Parse "6-12" or "0.5" into a (low, high) range of seconds."""
    low_text, sep, high_text = text.strip().partition("-")
    try:
        low = float(low_text)
        high = float(high_text) if sep else low
    except ValueError:
        raise ValueError(f"latency must be SECONDS or MIN-MAX seconds, e.g. 0.5 or 6-12; got {text!r}") from None
    if low < 0 or high < low:
        raise ValueError(f"latency range must satisfy 0 <= MIN <= MAX; got {text!r}")
    return (low, high)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: Emulator

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        # Remembered so stop() can cut idle keep-alive connections, whose
        # handler threads would otherwise go on answering after the stop.
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_sockets = list(self.connections)
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients hanging up mid-answer are normal under fault injection.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CloudSightEmulator/1.0"
    timeout = 120  # idle keep-alive connections end eventually
    # Headers and body go out in separate writes; with Nagle on, the second
    # waits for the client's delayed ACK (tens of ms per answer).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        emulator = self.server.emulator
        account = emulator._account
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        refusal = None
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            refusal = (411, "send the body with a Content-Length")
        elif length < 0:
            refusal = (400, "invalid Content-Length")
        elif length > _MAX_BODY:
            refusal = (413, "request body too large")
        if refusal:
            # The body was not read, so this connection cannot carry another request.
            account.count("requests")
            self._send(refusal[0], {"error": refusal[1]}, close=True)
            return
        body = self.rfile.read(length) if length else b""
        submitting = method == "POST" and bool(_SUBMIT.match(urlsplit(self.path).path.rstrip("/") or "/"))
        if submitting:
            account.submitting(+1)
        try:
            self._answer(method, body)
        finally:
            if submitting:
                account.submitting(-1)

    def _answer(self, method: str, body: bytes) -> None:
        account = self.server.emulator._account
        self._lost: str | None = None
        fault = account.arrive()
        if fault == "outage":
            faults = account.faults
            headers = {} if faults.outage_retry_after is None else {"Retry-After": _seconds(faults.outage_retry_after)}
            self._send(faults.outage_status, {"error": "service unavailable (injected outage)"}, headers)
            return
        if fault == "drop":
            self.close_connection = True
            return
        if fault == "error":
            code = account.pick((500, 502, 503))
            self._send(code, {"error": "internal server error (injected)"})
            return
        if fault == "rate_limit":
            retry_after = account.faults.retry_after
            self._send(429, {"error": "rate limit exceeded"}, {"Retry-After": _seconds(retry_after)})
            account.announce_retry_after(retry_after)
            return
        faults = account.faults
        if faults.redirect_to:
            # The redirect fault: the request goes nowhere here, the client is sent to another host.
            account.count("redirected")
            location = faults.redirect_to.rstrip("/") + self.path
            self._send(faults.redirect_status, {"moved": location}, {"Location": location})
            return
        status, answer = self._route(method, body)
        if self._lost is not None:
            self._lose_answer(self._lost)
            return
        delay = account.slow_delay()
        if delay:
            time.sleep(delay)
        self._send(status, answer)

    def _lose_answer(self, kind: str) -> None:
        """The job was created and charged; its answer never reaches the client."""
        if kind == "timeout":
            time.sleep(self.server.emulator._account.faults.lost_answer_seconds)
            self.close_connection = True  # the client gave up waiting; the answer is not sent
        elif kind == "reset":
            # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            except OSError:
                pass
            self.close_connection = True
        else:
            self._send(int(kind), {"error": "internal server error (injected after the job was created)"})

    def _route(self, method: str, body: bytes) -> tuple[int, dict[str, object] | None]:
        emulator = self.server.emulator
        account = emulator._account
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        url = f"http://{self.headers.get('Host') or emulator.address}{self.path}"
        problem = check_auth(
            emulator.key, emulator.secret, method=method, url=url, headers=dict(self.headers.items()), body=body
        )
        if problem:
            account.count("auth_failures")
            return 401, {"error": problem}
        if method == "POST" and _SUBMIT.match(path):
            return self._submit(body, parts.query)
        if method == "GET" and (match := _POLL.match(path)):
            return 200, account.poll(match.group(1))
        if method == "POST" and (match := _REPOST.match(path)):
            outcome = account.repost(match.group(1))
            if outcome == "ok":
                return 200, None
            if outcome == "unknown":
                return 404, {"error": "no image with that token"}
            if outcome == "fault":
                return account.faults.repost_status, None
            account.count("validation_errors")
            return 422, {"error": {"status": ["cannot be reposted"]}}
        account.count("unrouted")
        return 404, {"error": f"no route for {method} {path}"}

    def _submit(self, body: bytes, query: str) -> tuple[int, dict[str, object]]:
        emulator = self.server.emulator
        account = emulator._account
        try:
            form = parse_body(self.headers.get("Content-Type", ""), body, query)
        except BadBody as exc:
            return self._invalid("base", str(exc))
        if not (form.get("locale") or "").strip():
            return self._invalid("locale", "can't be blank")
        ttl = _parse_ttl(form.get("ttl"), emulator.ttl)
        if ttl is None:
            return self._invalid("ttl", "must be a positive number or max")
        upload = form.file("image")
        remote_url = (form.get("remote_image_url") or "").strip()
        if upload is None and not remote_url:
            return self._invalid("image", "can't be blank")
        if upload is not None and remote_url:
            return self._invalid("remote_image_url", "must be blank when an image is uploaded")
        if upload is not None:
            image = upload.content
        else:
            fetched = _fetch(remote_url)
            if fetched is None:
                return self._invalid("remote_image_url", "could not be fetched")
            image = fetched
        try:
            analysis: Analysis = analyse(image)
        except InvalidImage:
            field_name = "image" if upload is not None else "remote_image_url"
            return self._invalid(field_name, "is invalid")
        base = emulator.url.rsplit("/v1", 1)[0]
        job = account.submit(
            image,
            (lambda token: remote_url) if remote_url else (lambda token: f"{base}/uploads/{token}.jpg"),
            ttl,
            analysis,
            remote=bool(remote_url),
        )
        self._lost = account.lose_answer()
        if self._lost is None and account.faults.submit_delay:
            time.sleep(account.faults.submit_delay)
        answer: dict[str, object] = {"token": job.token, "url": job.url, "ttl": job.ttl, "status": "not completed"}
        answer.update(account.faults.submit_fields)  # the hostile-answer fault (empty unless set)
        return 200, answer

    def _invalid(self, field_name: str, message: str) -> tuple[int, dict[str, object]]:
        self.server.emulator._account.count("validation_errors")
        return 422, {"error": {field_name: [message]}}

    def _send(
        self, status: int, answer: dict[str, object] | None, headers: dict[str, str] | None = None, close: bool = False
    ) -> None:
        payload = b"" if answer is None else json.dumps(answer).encode()
        try:
            self.send_response(status)
            if answer is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            account = self.server.emulator._account
            self.send_header("X-CloudSight-CreditBalance", account.faults.credit_header or str(account.balance()))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


def _seconds(value: float) -> str:
    """Retry-After text: whole seconds as an integer, as the service sends them.

    A fractional setting (fast tests) goes out as a decimal rather than rounded,
    so the header always announces exactly the window the emulator enforces.
    """
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _parse_ttl(text: str | None, default: float) -> float | None:
    if text is None or not text.strip():
        return default
    if text.strip().lower() == "max":
        return MAX_TTL
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


def _fetch(url: str) -> bytes | None:
    """The body of url when it answers 200 directly; None otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in _LOOPBACK_HOSTS:
        return None
    try:
        response = requests.get(url, timeout=10, allow_redirects=False)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    return response.content


class Emulator:
    """A CloudSight emulator on loopback; a context manager that starts on enter.

    After start(), ``url`` is the new-style base URL (``http://127.0.0.1:PORT/v1``);
    ``key`` and ``secret`` are what clients authenticate with.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key: str = "emulator-key",
        secret: str = "emulator-secret",
        latency: tuple[float, float] = (0.2, 0.5),
        ttl: float = 60.0,
        faults: Faults | None = None,
        credits: int = 100_000,
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        state: str | None = None,
    ) -> None:
        low, high = latency
        if low < 0 or high < low:
            raise ValueError(f"latency must satisfy 0 <= low <= high, got {latency!r}")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        self.host = host
        self.port = port
        self.key = key
        self.secret = secret
        self.ttl = float(ttl)
        # A state file keeps jobs and balance between processes, as the service does; ``credits`` then
        # only starts a new file.
        self.state = state
        store = StateFile(state, clock) if state else None
        self._account = Account(
            latency=(float(low), float(high)),
            faults=faults or Faults(),
            credits=credits,
            seed=seed,
            clock=clock,
            store=store,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def address(self) -> str:
        """host:port the server listens on."""
        return f"{self.host}:{self.port}"

    def start(self) -> Emulator:
        """Bind and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self.url = f"http://{self.address}/v1"
        self._server = server
        # A short poll interval keeps stop() quick; the default is half a second.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="cloudsight-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (and the state file: a stopped emulator cannot restart)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None
        store, self._account.store = self._account.store, None
        if store is not None:
            store.close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def counters(self) -> dict[str, object]:
        """A snapshot of the request counters (a plain dict).

        Integer counts: requests, submissions, polls, reposts (accepted ones),
        duplicates (accepted submissions whose bytes were submitted before, ever),
        remote_submissions, auth_failures, validation_errors (every 422),
        server_errors_injected, rate_limited, dropped, outage_errors (requests
        answered by an injected outage), lost_answers (accepted and charged
        submissions whose answer was then lost; by kind in
        lost_answers_by_kind), repeated_tokens (accepted and charged submissions
        answered with the previous one's token), redirected (requests answered by
        the redirect fault), unrouted (requests to no known path, e.g. a token
        that walked out of /images), max_concurrent_submissions (most submissions
        being answered at one moment), in_retry_after_window
        (requests arriving while the one account-wide window announced by a
        sent 429 is open, less its first Faults.in_flight_grace (0.1 s by default), when requests
        already in flight cannot know of it).
        Dicts by token: polls_by_token; completed_at (emulator-clock time the
        job's current attempt settled as completed, for jobs already settled);
        first_seen_completed_at (time of the first poll that answered any
        terminal status, cleared when the job is reposted).
        """
        return self._account.snapshot()

    def reset_counters(self) -> None:
        """Zero the counters."""
        self._account.reset_counters()

    def forget(self, token: str) -> bool:
        """Forget one job (as the service does after its retention): its polls answer "not found" from now on."""
        return self._account.forget(token)

    def set_faults(self, faults: Faults) -> None:
        """Change the faults while running (an outage or a count of lost answers starts now)."""
        self._account.set_faults(faults)

    @property
    def credits(self) -> int:
        """Credits left on the account."""
        return self._account.balance()

    @property
    def remembers(self) -> bool:
        """True when its state file was there before: it knows the jobs earlier processes created."""
        store = self._account.store
        return store is not None and not store.created

    @property
    def charged(self) -> tuple[int, int]:
        """Credits charged: by this emulator since it started, and in all (since its state file was made)."""
        with self._account.lock:
            return self._account.charged - self._account.charged_before, self._account.charged

    def stopped_words(self) -> str:
        """What it charged, in the words printed when it stops."""
        now, total = self.charged
        words = f"charged {now} credit{'' if now == 1 else 's'}"
        if self.state:
            words += f" ({total} since {self.state} was made), balance {self.credits}"
        return words


def serve(host: str = "127.0.0.1", port: int = 0, **settings: Any) -> None:
    """Run an emulator in the foreground until Ctrl-C, printing its base URL and key.

    ``settings`` are ``Emulator``'s keyword arguments (key, secret, latency, ttl, faults, credits, seed,
    state). When it stops it prints what it charged.
    """
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a service manager, `kill`) stops it as Ctrl-C does, so it says what it charged; Ctrl-C
        # itself is a clean stop here, whatever handler the command installed while it started.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    emulator = Emulator(host, port, **settings)
    with emulator:
        # The prints are inside the try: a Ctrl-C that comes as soon as the URL is out (a script that
        # read it and is done) may land before the wait starts, and is a clean stop all the same.
        try:
            print(f"CloudSight emulator listening at {emulator.url}", flush=True)
            print(f"API key: {emulator.key}", flush=True)
            if emulator.state:
                print(f"state: {emulator.state} (jobs and balance kept between starts)", flush=True)
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", flush=True)
    print(f"stopped: {emulator.stopped_words()}", flush=True)
