"""When to poll each token: a heap ordered by due time, not a sleep per job.

Where a token's polls are aimed comes from ``tagger.pipeline.latency``;
this module only keeps them in order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Schedule", "Entry"]


@dataclass(order=True)
class Entry:
    """A token waiting for its next poll."""

    due: float
    job_id: int = field(compare=False)
    token: str = field(compare=False)
    submitted_at: float = field(compare=False)
    reposts: int = field(compare=False, default=0)
    last_poll: float | None = field(compare=False, default=None)
    last_gap: float = field(compare=False, default=1.0)
    deadline: float = field(compare=False, default=float("inf"))  # no final answer by then: the job times out
    # The ``previous`` the last gap was computed from: re-aiming recomputes that gap, not a longer one.
    previous_gap: float = field(compare=False, default=1.0)
    # How much earlier than the aim the first poll comes (a fraction of it): probes keep probing when re-aimed.
    lead: float = field(compare=False, default=0.0)
    polls: int = field(compare=False, default=0)  # polls that found it working
    # False for a token resumed from an earlier run: polled at once, its age unknown.
    aimed: bool = field(compare=False, default=True)
    # A failed call or an unknown status holds the next poll back at least this long.
    not_before: float = field(compare=False, default=0.0)


class Schedule:
    """Tokens ordered by when they are next due."""

    def __init__(self) -> None:
        self._heap: list[Entry] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, entry: Entry) -> None:
        """Put a token in the schedule."""
        heapq.heappush(self._heap, entry)

    def next_due(self) -> float | None:
        """When the earliest token is due, or None when empty."""
        return self._heap[0].due if self._heap else None

    def reschedule(self, due: Callable[[Entry], float]) -> None:
        """Give every waiting token a new due time (the estimate that aimed them changed)."""
        for entry in self._heap:
            entry.due = due(entry)
        heapq.heapify(self._heap)

    def pop_due(self, now: float) -> list[Entry]:
        """Take every token due at ``now``."""
        out = []
        while self._heap and self._heap[0].due <= now:
            out.append(heapq.heappop(self._heap))
        return out
