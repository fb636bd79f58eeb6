"""Write completed captions into sidecars, and record each write in the ledger.

The ledger marks a file written only after its sidecar was renamed into
place, so a crash in between means the write happens again (it is
idempotent), never that a caption is forgotten.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from tagger.display import iso
from tagger.ledger.store import Ledger
from tagger.outputs.derivation import refresh_keywords, stored_keywords
from tagger.outputs.keywords import KeywordRules, Keywords, derive
from tagger.outputs.sidecar import SidecarContent, SidecarError, sidecar_path_for, write_sidecar

__all__ = ["SidecarOptions", "write_back"]

log = logging.getLogger("tagger.outputs.writeback")


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

    @property
    def keyword_rules(self) -> KeywordRules:
        """The rules in force (``keyword_parent`` included)."""
        return self.rules or KeywordRules(parent=self.keyword_parent)


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(json.loads(value)) if value else ()


def write_back(ledger: Ledger, options: SidecarOptions, job_id: int | None = None) -> tuple[int, int]:
    """Write every completed, not yet written caption (of one job, or all).

    Returns (sidecars written, files that failed to write).
    """
    written = failed = 0
    rules = options.keyword_rules
    fingerprint = rules.fingerprint
    if job_id is None:
        # One derivation, stored, for every job (remote images too): the exports and the contact sheet
        # read the keywords the sidecars got.
        refresh_keywords(ledger, rules)
    derived: dict[int, Keywords] = {}
    for row in ledger.unwritten(job_id):
        (file_id, directory, name, root, jid, token, endpoint, caption, flags, categories, status, reason, settled,
         subject, paths, stored_rules, donor_dir, donor_name) = row
        fresh = None
        if stored_rules == fingerprint:
            keywords = stored_keywords(subject, paths, caption, categories, rules)
        else:  # just settled: derived here and stored with the write, in one commit
            keywords = derived.get(jid) or derive(caption, _list(categories), rules)
            derived[jid] = keywords
            fresh = (fingerprint, *keywords.to_json())
        if not options.enabled:
            ledger.mark_written(file_id, jid, None, fresh)
            continue
        image = os.fsdecode(os.path.join(directory, name))
        try:
            target = sidecar_path_for(
                image,
                naming=options.naming,
                sidecar_dir=options.sidecar_dir or None,
                root=os.fsdecode(root),
            )
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
                locale=options.locale,
                reused_from=os.path.join(donor_dir, donor_name).decode("utf-8", "replace") if donor_dir is not None else None,
            )
            if options.sidecar_dir:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            # The photo itself is read here (headers only): a new sidecar starts as a copy of its metadata.
            changed = write_sidecar(target, content, hierarchy_parent=options.keyword_parent, image=image)
        except (SidecarError, OSError) as exc:
            failed += 1
            message = f"sidecar not written: {exc}"
            log.warning("%s: %s", image, message)
            ledger.mark_file_failed(file_id, message)
            continue
        ledger.mark_written(file_id, jid, os.fsencode(target), fresh)
        written += int(changed)
    return written, failed
