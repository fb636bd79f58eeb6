"""Apply: the captions a person approved or edited go into their sidecars, by the same merge rules as a run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tagger.ledger.store import Ledger
from tagger.sidecars.writeback import SidecarOptions, write_back

__all__ = ["ApplyResult", "apply_reviews"]


@dataclass
class ApplyResult:
    """What an apply did: sidecars written (changed), sidecars that could not be written, and captions decided."""

    written: int = 0
    failed: int = 0
    decided: int = 0


def apply_reviews(ledger: Ledger, options: SidecarOptions, roots: list[bytes] | None = None) -> ApplyResult:
    """Write every approved or edited caption (of files under ``roots``, or all) not yet in its sidecar.

    Held and rejected captions are left out; nothing is sent, no credit.
    """
    result = ApplyResult(decided=len(ledger.reviews.decided_unwritten(roots)))
    only = dataclasses.replace(options, hold=False, reviewed_only=True)
    result.written, result.failed = write_back(ledger, only, roots=roots)
    return result
