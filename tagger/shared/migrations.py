"""The shared store's schema: its own migrations, recorded in ``tagger_shared_migrations``.

Each migration runs once, in order, in one transaction, under an advisory
lock (two machines starting together do not both apply it). A store whose
recorded migrations include one this tagger does not know was written by a
newer tagger: it is refused, untouched.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MIGRATIONS", "NAMES", "apply", "NewerSchema"]

# Any constant: the advisory lock that serialises schema changes across machines.
_LOCK = 0x7A6761


class NewerSchema(Exception):
    """The store's schema is from a newer tagger (``args[0]`` names the newest migration)."""


MIGRATIONS: list[tuple[str, str]] = [
    (
        "s001_initial",
        """
        CREATE TABLE tagger_contents (
            content_hash text NOT NULL,
            scheme integer NOT NULL,
            endpoint text NOT NULL,
            locale text NOT NULL,
            state text NOT NULL,             -- claimed | sending | polling | settled
            owner text,                       -- the claimant: one machine's one ledger
            machine text,
            lease_until timestamptz,
            token text,
            job_state text,                   -- the final state, once settled
            status text,
            caption text,
            reason text,
            flags jsonb,
            categories jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            settled_at timestamptz,
            settled_by text,
            PRIMARY KEY (content_hash, scheme, endpoint, locale)
        );
        CREATE INDEX tagger_contents_owner ON tagger_contents (owner) WHERE state <> 'settled';
        CREATE TABLE tagger_fingerprints (
            content_hash text NOT NULL,
            scheme integer NOT NULL,
            key bigint NOT NULL,
            aspect double precision NOT NULL,
            print bytea NOT NULL,
            PRIMARY KEY (content_hash, scheme)
        );
        CREATE INDEX tagger_fingerprints_key ON tagger_fingerprints (key);
        CREATE TABLE tagger_files (
            owner text NOT NULL,
            machine text NOT NULL,
            path text NOT NULL,
            content_hash text,
            endpoint text NOT NULL,
            locale text NOT NULL,
            status text NOT NULL,
            caption text,
            keywords jsonb NOT NULL DEFAULT '[]',
            reported_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (owner, path)
        );
        CREATE TABLE tagger_machines (
            owner text PRIMARY KEY,
            machine text NOT NULL,
            published_until double precision NOT NULL DEFAULT 0,
            last_seen timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
]

NAMES = [name for name, _ in MIGRATIONS]


def apply(conn: Any) -> list[str]:
    """Bring the schema up to date (a psycopg connection in autocommit); returns what was applied.

    Raises ``NewerSchema`` before changing anything when the store knows a migration this tagger does not.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(
            """CREATE TABLE IF NOT EXISTS tagger_shared_migrations (
                   name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r[0] for r in conn.execute("SELECT name FROM tagger_shared_migrations")}
        unknown = sorted(done - set(NAMES))
        if unknown:
            raise NewerSchema(unknown[-1])
        applied = []
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO tagger_shared_migrations (name) VALUES (%s)", (name,))
            applied.append(name)
        return applied
