"""A total deadline per HTTP request, on top of requests' per-read timeout.

requests' ``timeout`` bounds each read of the socket: a server that sends one
byte every few seconds keeps a request alive for ever. ``DeadlineAdapter``
starts a timer with each request; when it fires, the connection's socket is
shut down (the read in progress returns at once) and the request fails as a
``requests.Timeout``, which the client reports as "did not answer in time".
The body is read inside the deadline too (requests would read it after the
adapter returned).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

__all__ = ["DeadlineAdapter", "use_deadline"]

# The request being sent by this thread: its connection is noted here when it starts writing.
_current = threading.local()


def _note(conn: Any) -> None:
    holder = getattr(_current, "holder", None)
    if holder is not None:
        holder["conn"] = conn
        if holder.get("expired"):  # the deadline passed before the connection was made
            _cut(conn)


def _cut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # closed already


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self)
        super().request(*args, **kwargs)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self)
        super().request(*args, **kwargs)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose every request, body included, ends within ``deadline`` seconds."""

    def __init__(self, deadline: float, **kwargs: Any) -> None:
        self.deadline = deadline
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The pool manager, with connections that tell the deadline which socket to cut."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def send(  # type: ignore[override]  # passes the rest on as it gets them
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        """Send, and read the answer, within the deadline."""
        holder: dict[str, Any] = {}

        def expire() -> None:
            holder["expired"] = True
            if "conn" in holder:
                _cut(holder["conn"])

        timer = threading.Timer(self.deadline, expire)
        timer.daemon = True
        _current.holder = holder
        timer.start()
        try:
            response = super().send(request, stream=stream, **kwargs)
            if not stream:
                _ = response.content  # read here, under the deadline
            if holder.get("expired"):
                raise requests.exceptions.ReadTimeout(f"no whole answer within {self.deadline:g} s", request=request)
            return response
        except requests.RequestException as exc:
            if holder.get("expired") and not isinstance(exc, requests.Timeout):
                raise requests.exceptions.ReadTimeout(
                    f"no whole answer within {self.deadline:g} s", request=request
                ) from exc
            raise
        finally:
            timer.cancel()
            _current.holder = None


def use_deadline(session: requests.Session, deadline: float) -> None:
    """Give every http(s) adapter of ``session`` a total ``deadline`` per request (its pool size kept)."""
    for prefix in ("http://", "https://"):
        old = session.get_adapter(prefix + "x")
        size = getattr(old, "_pool_maxsize", requests.adapters.DEFAULT_POOLSIZE)
        conns = getattr(old, "_pool_connections", requests.adapters.DEFAULT_POOLSIZE)
        session.mount(prefix, DeadlineAdapter(deadline, pool_connections=conns, pool_maxsize=size, max_retries=0))
