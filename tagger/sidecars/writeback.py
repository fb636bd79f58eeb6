"""Write completed captions into sidecars, and record each write in the ledger.

The ledger marks a file written only after its sidecar was renamed into
place, so a crash in between means the write happens again (it is
idempotent), never that a caption is forgotten. A run writes only the
sidecars of files under its own roots; with sidecars off it writes none and
marks none, so a later run with sidecars on writes them. A sidecar that
could not be written keeps its reason in the ledger and is tried again on
every run.

With ``hold`` a caption is not written: it is recorded as awaiting a
person's review (``tagger review``). A held caption reaches its sidecar only
once approved or edited; an edited one is written as the person left it
(their caption and keywords, ``tagger:review`` "edited"), whatever the
vocabulary or a later ``--rewrite-sidecars``; a rejected one never.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from tagger.display import iso
from tagger.errors import SidecarError
from tagger.keywords.derive import KeywordRules, Keywords, derive
from tagger.keywords.stored import refresh_keywords, stored_keywords
from tagger.ledger.review import APPROVED, EDITED
from tagger.ledger.store import Ledger
from tagger.sidecars.naming import sidecar_path_for

__all__ = ["SidecarOptions", "write_back", "sidecar_of"]

log = logging.getLogger("tagger.sidecars.writeback")


@dataclass(frozen=True)
class SidecarOptions:
    """Where and how sidecars are written."""

    enabled: bool = True
    sidecar_dir: str | None = None
    naming: str = "full"
    keyword_parent: str = "CloudSight"
    #: How keywords are derived (vocabulary, unmapped words, language); None: no vocabulary, English.
    rules: KeywordRules | None = field(default=None, compare=False)
    #: The captions' language (the jobs were sent with it): each goes under its own xml:lang.
    locale: str = "en-US"
    #: Hold new captions for a person's review instead of writing them (``[output] hold``).
    hold: bool = False
    #: Write only the captions a person approved or edited (``tagger apply``).
    reviewed_only: bool = False
    #: A run over several roots: each root gets its own folder in the ``sidecar_dir`` mirror (see naming).
    per_root: bool = False

    @property
    def keyword_rules(self) -> KeywordRules:
        """The rules in force (``keyword_parent`` included)."""
        return self.rules or KeywordRules(parent=self.keyword_parent)


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(json.loads(value)) if value else ()


def sidecar_of(options: SidecarOptions, directory: bytes, name: bytes, root: bytes) -> str:
    """Where the sidecar of one ledger file lives with these options."""
    return sidecar_path_for(
        os.fsdecode(os.path.join(directory, name)),
        naming=options.naming,
        sidecar_dir=options.sidecar_dir or None,
        root=os.fsdecode(root),
        per_root=options.per_root,
    )


def _leaves(image: str, allowed: list[str]) -> bool:
    """True when ``image``, resolved, is under none of the ``allowed`` (resolved) folders."""
    real = os.path.realpath(image)
    return not any(real == a or real.startswith(a.rstrip(os.sep) + os.sep) for a in allowed)


def write_back(
    ledger: Ledger, options: SidecarOptions, job_id: int | None = None, roots: list[bytes] | None = None
) -> tuple[int, int]:
    """Write every completed, not yet written caption (of one job, or all; of files under ``roots`` when given).

    Returns (sidecars written, files whose sidecar could not be written).
    """
    written = failed = 0
    rules = options.keyword_rules
    rules_digest = rules.digest
    if job_id is None:
        # One derivation, stored, for every job (remote images too): the exports and the contact sheet
        # read the keywords the sidecars got.
        refresh_keywords(ledger, rules)
    rows = ledger.writes.unwritten(job_id, roots)
    # A review row counts only for the job whose caption was held (a changed file has another job).
    reviews = ledger.reviews.of_files([row.file_id for row in rows]) if rows else {}
    if options.hold:
        held = [
            (row.file_id, row.job_id)
            for row in rows
            if (known := reviews.get(row.file_id)) is None or known.job_id != row.job_id
        ]
        if held:
            if job_id is not None:
                refresh_keywords(ledger, rules, job_id)  # the page and the spreadsheet show them
            ledger.reviews.set_awaiting(held)
            reviews.update(ledger.reviews.of_files(f for f, _ in held))
    if not options.enabled:
        if job_id is not None:
            refresh_keywords(ledger, rules, job_id)  # the exports read them
        return 0, 0  # deferred: the files stay unwritten until a run with sidecars on
    if not rows:
        return 0, 0
    # Imported here: a nightly run with nothing to write does not load the XMP writer.
    from tagger.sidecars.write import SidecarContent, write_sidecar

    derived: dict[int, Keywords] = {}
    applied: list[int] = []
    real_roots = {r: os.path.realpath(os.fsdecode(r)) for r in roots or []}
    for row in rows:
        (
            file_id,
            directory,
            name,
            root,
            digest,
            jid,
            token,
            endpoint,
            locale,
            caption,
            flags,
            categories,
            status,
            reason,
            settled,
            subject,
            paths,
            stored_rules,
            lender_dir,
            lender_name,
        ) = row
        review = reviews.get(file_id)
        decision = review.decision if review is not None and review.job_id == jid else None
        if decision is None and options.reviewed_only:
            continue
        if decision is not None and decision not in (APPROVED, EDITED):
            continue  # awaiting a person, or rejected: no caption in the sidecar
        fresh = None
        if decision == EDITED and review is not None:
            # The person's caption and keywords, as they left them: never derived again, never reverted.
            caption = review.caption
            keywords = Keywords(
                tuple(json.loads(review.keywords or "[]")),
                tuple(tuple(p) for p in json.loads(review.keyword_paths or "[]")),
            )
        elif stored_rules == rules_digest:
            keywords = stored_keywords(subject, paths, caption, categories, rules)
        else:  # just settled: derived here and stored with the write, in one commit
            keywords = derived.get(jid) or derive(caption, _list(categories), rules)
            derived[jid] = keywords
            fresh = (rules_digest, *keywords.to_json())
        image = os.fsdecode(os.path.join(directory, name))
        try:
            if root not in real_roots:
                real_roots[root] = os.path.realpath(os.fsdecode(root))
            if _leaves(image, list(real_roots.values())):
                # The photo is read for the sidecar's copy of its metadata: never through a link out of the roots.
                raise SidecarError(f"{image} is a symbolic link out of the scanned folders; not read")
            target = sidecar_of(options, directory, name, root)
            content = SidecarContent(
                caption=caption or "",
                keywords=keywords.subject,
                paths=keywords.paths,
                token=token or "",
                endpoint=endpoint,
                status=status or "completed",
                reason=reason,
                flags=_list(flags),
                settled_at=iso(settled),
                content_hash=digest or "",
                locale=locale,
                categories=tuple(str(c) for c in _list(categories)),
                reused_from=os.path.join(lender_dir, lender_name).decode("utf-8", "replace")
                if lender_dir is not None and lender_name is not None
                else None,
                review=decision,
            )
            if options.sidecar_dir:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            # The photo itself is read here (headers only): a new sidecar starts as a copy of its metadata.
            changed = write_sidecar(target, content, hierarchy_parent=options.keyword_parent, image=image)
        except (SidecarError, OSError) as exc:
            failed += 1
            message = f"sidecar not written: {exc}"
            log.warning("%s: %s (tried again on the next run)", image, message)
            ledger.writes.sidecar_failed(file_id, message)
            continue
        ledger.writes.mark_written(file_id, jid, os.fsencode(target), fresh)
        if decision is not None:
            applied.append(file_id)
        written += int(changed)
    if applied:
        ledger.reviews.mark_applied(applied)
    return written, failed
