"""A real PostgreSQL for the shared-store tests: a throwaway cluster, or the server ``TAGGER_TEST_PG_URL`` names.

Without ``TAGGER_TEST_PG_URL``, a cluster is made in a temporary folder
(initdb, then pg_ctl with its socket there, on a free loopback port), run as
the ``postgres`` user when the tests run as root (initdb refuses root), with
scram-sha-256 passwords on TCP; it is stopped at the end of the session.
Missing binaries fail the tests with a sentence that says what to install:
these tests never skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator

import pytest

__all__ = ["PgServer", "postgres", "pg_url", "PASSWORD"]

#: The test role's password: the tests assert it never reaches a log, sidecar, ledger or message.
PASSWORD = "s3cret-" + secrets.token_hex(6)
ROLE = "tagger_test"


def _bindir() -> str:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    pytest.fail(
        "the shared-store tests need PostgreSQL: install it (apt-get install postgresql) so that initdb and "
        "pg_ctl are found (/usr/lib/postgresql/*/bin or PATH), or set TAGGER_TEST_PG_URL to a server's URL "
        "(a role that may CREATE DATABASE)",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One PostgreSQL server the tests may create databases in (and stop and start, when it is theirs)."""

    def __init__(self, admin_url: str | None = None) -> None:
        self.own = admin_url is None
        self.folder = ""
        self._n = 0
        if admin_url is not None:
            self.admin_url = admin_url
            parts = urllib.parse.urlsplit(admin_url)
            self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5432
            return
        self.bindir = _bindir()
        self.folder = tempfile.mkdtemp(prefix="tagger-pg-")
        self.port = _free_port()
        self.host = "127.0.0.1"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            os.chmod(self.folder, 0o755)
            pw = pwd.getpwnam("postgres")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
        pwfile = os.path.join(self.folder, "pw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self._as_postgres:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        self._pg("initdb", "-D", self.data, "-U", "postgres", "-A", "scram-sha-256", f"--pwfile={pwfile}", "--no-sync")
        self.start()
        self.admin_url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> str:
        return os.path.join(self.folder, "data")

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [os.path.join(self.bindir, tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.folder)
        if done.returncode:
            raise AssertionError(f"{tool} failed ({done.returncode}): {done.stdout}\n{done.stderr}")

    def start(self) -> None:
        """Start the server (its own cluster only)."""
        assert self.own, "TAGGER_TEST_PG_URL names a server the tests do not stop or start"
        opts = f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.folder, "log"), "-w", "start")

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``: as a crash or a pulled cable looks to a client)."""
        assert self.own, "TAGGER_TEST_PG_URL names a server the tests do not stop or start"
        self._pg("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")

    def new_database(self) -> str:
        """A fresh database owned by the password-protected test role; returns its URL (password in it)."""
        import psycopg

        self._n += 1
        name = f"tagger_{os.getpid()}_{self._n}_{secrets.token_hex(3)}"
        with psycopg.connect(self.admin_url, autocommit=True) as c:
            if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone():
                c.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            c.execute(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def url(self, database: str, password: str = PASSWORD) -> str:
        """The test role's URL of one database."""
        return f"postgresql://{ROLE}:{urllib.parse.quote(password, safe='')}@{self.host}:{self.port}/{database}"

    def close(self) -> None:
        """Stop and remove the cluster (when it is the tests' own)."""
        if self.own and self.folder:
            try:
                self.stop()
            except AssertionError:
                pass  # already stopped
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """The session's PostgreSQL server."""
    server = PgServer(os.environ.get("TAGGER_TEST_PG_URL") or None)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_url(postgres: PgServer) -> str:
    """A fresh database of the session's server, for one test."""
    return postgres.new_database()
