"""The first ledger schema: files, jobs (one per content and endpoint), runs."""

from __future__ import annotations

from sqlite_utils import Database

SCHEMA = """
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    dir BLOB NOT NULL,            -- absolute folder, as raw bytes (names need not be UTF-8)
    name BLOB NOT NULL,
    root BLOB NOT NULL,           -- the scanned root it was found under
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT,            -- hash of the image data (metadata blocks skipped)
    state TEXT NOT NULL,          -- active | failed | missing
    reason TEXT,                  -- why the file failed (file-level: unreadable)
    job_id INTEGER REFERENCES jobs(id),
    written_job INTEGER,          -- the job whose caption its sidecar holds
    written_at REAL,              -- when that sidecar was written (after the rename)
    sidecar BLOB,                 -- where that sidecar is
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    UNIQUE (dir, name)
);
CREATE INDEX files_hash ON files (content_hash);
CREATE INDEX files_job ON files (job_id);

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    content_hash TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    source BLOB,                  -- a file with this content, or the remote URL
    state TEXT NOT NULL,          -- queued | submitting | polling | completed | skipped | timeout | not_found | failed
    token TEXT UNIQUE,
    status TEXT,                  -- the service's last status word
    caption TEXT,
    reason TEXT,                  -- skip reason, or why the job failed
    flags TEXT,                   -- JSON list
    categories TEXT,              -- JSON list
    attempts INTEGER NOT NULL DEFAULT 0,
    reposts INTEGER NOT NULL DEFAULT 0,
    polls INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at REAL NOT NULL,
    submitted_at REAL,
    settled_at REAL,
    UNIQUE (content_hash, endpoint)
);
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    finished_at REAL,
    endpoint TEXT NOT NULL,
    pid INTEGER NOT NULL,
    submitted INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER
);
"""


def apply(db: Database) -> None:
    """Create the first schema."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
