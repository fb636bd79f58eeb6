"""What a run did (``Tally``) and how it stops: a light module, so a run that sends nothing never loads the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Tally", "INTERRUPTED", "STOP_GRACE"]

#: Seconds a stopping run waits for the answers of POSTs already sent.
STOP_GRACE = 5.0

#: ``Tally.stopped`` of a run stopped by its ``stop`` event (a signal): nothing failed, the next run resumes.
INTERRUPTED = "interrupted"


@dataclass
class Tally:
    """What this run did."""

    submitted: int = 0
    completed: int = 0
    skipped: int = 0
    timeout: int = 0
    not_found: int = 0
    failed: int = 0
    reposts: int = 0
    polls: int = 0
    possible_duplicates: int = 0  # uploads sent again after an answer was lost: maybe charged twice
    held: int = 0  # jobs whose answer was lost, kept for `tagger retry --ambiguous`
    reused: int = 0  # jobs that share a similar photo's caption instead of being sent
    shared: int = 0  # jobs settled with an answer another machine paid for (the shared store)
    invalid_answers: int = 0  # answers refused by validation (a bad token, a field of the wrong type, a held token)
    stopped: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)
