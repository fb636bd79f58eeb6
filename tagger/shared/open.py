"""Opening the shared store at the start of a run: the faults that stop it before anything is sent."""

from __future__ import annotations

import hashlib
import logging
import os
import socket

from tagger.shared.base import NoShared, SharedError, SharedStore, redact, scrub

__all__ = ["open_store", "owner_of", "connect"]

log = logging.getLogger("tagger.shared")

# Refusals no retry fixes: wrong credentials, a database or role that does not exist.
_REFUSED = ("password authentication failed", "does not exist", "no password supplied", "authentication failed")


def owner_of(machine: str, ledger_path: str) -> str:
    """The claimant: one machine's one ledger (a run resuming after a crash finds its own claims again)."""
    where = hashlib.sha256(f"{socket.gethostname()}\n{os.path.abspath(ledger_path)}".encode()).hexdigest()[:12]
    return f"{machine}/{where}"


def connect(url: str):  # -> psycopg.Connection
    """A new autocommit connection (psycopg's errors pass through)."""
    import psycopg

    from tagger.shared.store import connection_kwargs

    return psycopg.connect(url, **connection_kwargs())


def open_store(
    url: str,
    *,
    required: bool = True,
    machine: str = "",
    ledger_path: str,
    endpoint: str,
    locale: str,
    scheme: int,
    lease: float = 30.0,
) -> SharedStore:
    """The store a run shares through: ``NoShared`` without a URL (psycopg is then never imported).

    Raises ``SharedError`` for refused credentials, a missing database, a
    schema from a newer tagger, and, when ``required``, an unreachable store;
    unreachable and not required: a warning, and the local ledger alone.
    """
    if not url:
        return NoShared()
    try:
        import psycopg
    except ImportError:
        raise SharedError("[shared] url is set but psycopg is not installed: pip install 'tagger[shared]'") from None
    from tagger.shared.migrations import NewerSchema, apply
    from tagger.shared.store import PgStore

    shown = redact(url)
    try:
        conn = connect(url)
    except (psycopg.Error, OSError) as exc:
        text = scrub(str(exc).strip(), url)
        if any(word in text for word in _REFUSED):
            raise SharedError(f"the shared store {shown} refused the connection: {text}; nothing was sent") from None
        if required:
            raise SharedError(
                f"the shared store {shown} is unreachable ({text}); nothing was sent. "
                "Start it, or set shared_required = false to run on the local ledger alone"
            ) from None
        log.warning("the shared store %s is unreachable (%s): running on the local ledger alone", shown, text)
        return NoShared()
    try:
        apply(conn)
    except NewerSchema as exc:
        conn.close()
        raise SharedError(
            f"the shared store {shown} was written by a newer tagger (schema {exc.args[0]}); "
            "upgrade tagger to use it (it was left untouched); nothing was sent"
        ) from None
    except psycopg.Error as exc:
        conn.close()
        raise SharedError(f"the shared store {shown} cannot be used: {scrub(str(exc).strip(), url)}") from None
    name = machine or socket.gethostname()
    return PgStore(
        url,
        conn,
        owner=owner_of(name, ledger_path),
        machine=name,
        endpoint=endpoint,
        locale=locale,
        scheme=scheme,
        lease=lease,
        connect=lambda: connect(url),
    )
