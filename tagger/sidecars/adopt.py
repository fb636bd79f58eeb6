"""A lost ledger costs nothing: take back, from the sidecars, the captions tagger already wrote.

A first run's intake asks ``adopt_file`` about each content it is about to
send. After planning, every unsent job of the run whose file has a sidecar holding
tagger's completed caption for that file's current content (the content
hash recorded beside it), from the same endpoint and in the same locale, is
settled with that caption instead of being sent. The sidecar is found where
this run's settings put it (``sidecar_dir``, naming), so it is exactly the
sidecar the run would write. A caption a similar photo lent (no token of its
own, ``reusedFrom`` names the lender) is taken back too, and shares the
lender's job again once the lender's file is in the ledger.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

from tagger.ledger.keys import normal_endpoint, normal_locale
from tagger.ledger.store import Ledger
from tagger.ledger.writes import Adoptable
from tagger.sidecars.writeback import SidecarOptions, sidecar_of

__all__ = ["Adoption", "adopt_file", "adopt_from_sidecars", "preview_adoption", "sidecar_answer"]

log = logging.getLogger("tagger.sidecars.adopt")


@dataclass(frozen=True)
class Adoption:
    """A completed caption read back from a sidecar."""

    token: str | None  # None: a caption a similar photo lent (no submission of its own)
    answer: dict
    settled_at: float | None
    sidecar: bytes
    lender: bytes | None = None  # the path of the photo that lent it


def _time(text: str) -> float | None:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


def _tuple(value: object) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else ((str(value),) if value else ())


def sidecar_answer(
    options: SidecarOptions, directory: bytes, name: bytes, root: bytes, digest: str | None, endpoint: str, locale: str
) -> Adoption | None:
    """The caption this file's sidecar holds for its current content at ``endpoint`` in ``locale``, if any."""
    if not digest:
        return None
    try:
        path = sidecar_of(options, directory, name, root)
    except ValueError:  # not under its root (a sidecar_dir mirror cannot place it)
        return None
    from tagger.sidecars.read import sidecar_provenance  # only when a sidecar is there to read

    prov = sidecar_provenance(path)
    caption, token = str(prov.get("caption") or ""), str(prov.get("token") or "")
    lender = str(prov.get("reusedFrom") or "")
    if (
        prov.get("contentHash") != digest
        or prov.get("status") != "completed"
        or not caption
        or not (token or lender)
        or normal_endpoint(str(prov.get("endpoint") or "")) != endpoint
        or normal_locale(str(prov.get("locale") or "")) != locale
        or not prov.get("locale")
    ):
        return None
    answer = {
        "status": "completed",
        "name": caption,
        "flags": list(_tuple(prov.get("flags"))),
        "categories": list(_tuple(prov.get("categories"))),
    }
    return Adoption(
        token or None,
        answer,
        _time(str(prov.get("date") or "")),
        os.fsencode(path),
        None if token else os.fsencode(lender),
    )


def adopt_from_sidecars(ledger: Ledger, options: SidecarOptions, endpoint: str) -> tuple[int, int]:
    """Settle this run's unsent jobs from their files' sidecars; returns (jobs, files) adopted."""
    by_job: dict[int, list[Adoptable]] = {}
    for row in ledger.writes.adoptable(endpoint):
        by_job.setdefault(row.job_id, []).append(row)
    jobs = files = 0
    for job_id, rows in by_job.items():
        found: Adoption | None = None
        holders: list[tuple[int, bytes]] = []
        for _, _, file_id, directory, name, root, digest in rows:
            got = sidecar_answer(options, directory, name, root, digest, endpoint, ledger.locale)
            if got is None or (found is not None and got.token != found.token):
                continue
            found = found or got
            holders.append((file_id, got.sidecar))
        if found is None:
            continue
        if ledger.writes.adopt(job_id, found.answer, found.token, found.settled_at, holders):
            jobs += 1
            files += len(holders)
            if found.lender is not None:
                ledger.writes.link_lender(job_id, found.lender)
        elif found.token is not None:
            log.warning("a sidecar names token %s, which the ledger holds for other content; not adopted", found.token)
    if jobs:
        log.info("%d caption(s) taken back from %d sidecar(s); nothing sent for them", jobs, files)
    return jobs, files


def adopt_file(
    ledger: Ledger,
    options: SidecarOptions,
    endpoint: str,
    job_id: int,
    file_id: int,
    directory: bytes,
    name: bytes,
    root: bytes,
    digest: str,
    unlinked: list[tuple[int, bytes]] | None = None,
) -> bool:
    """Settle a job just created for one file from that file's sidecar, when it holds tagger's caption for it.

    A lent caption whose lender has no job yet (the walk has not reached it)
    is added to ``unlinked`` as (job id, lender path), for ``link_lender``
    once the walk is over.
    """
    got = sidecar_answer(options, directory, name, root, digest, endpoint, ledger.locale)
    if got is None:
        return False
    if ledger.writes.adopt(job_id, got.answer, got.token, got.settled_at, [(file_id, got.sidecar)]):
        if got.lender is not None and not ledger.writes.link_lender(job_id, got.lender) and unlinked is not None:
            unlinked.append((job_id, got.lender))  # its lender is not in the ledger yet: linked after the walk
        return True
    if got.token is not None:
        log.warning("a sidecar names token %s, which the ledger holds for other content; not adopted", got.token)
    return False


def preview_adoption(
    ledger: Ledger, options: SidecarOptions, endpoint: str, hashed: list[tuple[bytes, bytes, bytes, str]]
) -> tuple[set[str], int]:
    """What a dry run's real run would adopt: (the contents whose credit it saves, files adopted)."""
    keys: set[str] = set()
    files: set[tuple[bytes, bytes]] = set()
    # ``hashed``: the dry run's new or changed files whose content the real run would still send.
    candidates: list[tuple[int | None, str, bytes, bytes, bytes, str]] = [
        (None, digest, d, n, r, digest) for d, n, r, digest in hashed
    ]
    candidates += [
        (job_id, job_hash, d, n, r, digest)
        for job_id, job_hash, _, d, n, r, digest in ledger.writes.adoptable(endpoint)
    ]
    for job_id, key, directory, name, root, digest in candidates:
        if (directory, name) in files:
            continue
        got = sidecar_answer(options, directory, name, root, digest, endpoint, ledger.locale)
        if got is not None and _would_adopt(ledger, got, job_id):
            keys.add(key)
            files.add((directory, name))
    return keys, len(files)


def _would_adopt(ledger: Ledger, got: Adoption, job_id: int | None) -> bool:
    """As ``Ledger.writes.adopt`` decides: not a token another job holds, nor a lent caption for a job to be sent on its own."""
    if got.token is not None:
        return not ledger.writes.token_held(got.token)
    return job_id is None or not ledger.similar.no_reuse(job_id)
