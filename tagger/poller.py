"""When to poll each token: a schedule ordered by due time, not a sleep per job.

The first poll of a job is aimed from the latencies this run has seen: at
the point where about 40 % of jobs are done plus one poll interval, which
keeps the median delay between "the service has it" and "we know it" under
one interval while most jobs need one or two polls. Without history the
documented 4 s first wait is used. Later polls come every ``interval``
while a job is within the usual latency, then back off; never faster than
one poll per ``interval`` per token.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from dataclasses import dataclass, field

__all__ = ["LatencyModel", "Schedule", "Entry"]


class LatencyModel:
    """Service latencies observed in this run (seconds from submit to done)."""

    def __init__(self, first_poll_delay: float, interval: float, max_interval: float, window: int = 500) -> None:
        self.first_poll_delay = first_poll_delay
        self.interval = interval
        self.max_interval = max_interval
        self._window = window
        self._recent: list[float] = []
        self._sorted: list[float] = []
        self._explore = itertools.count()

    def observe(self, low: float, high: float) -> None:
        """Record that a job finished somewhere between ``low`` and ``high`` seconds."""
        if high - low > 1.5 * self.interval:
            return  # too loose to learn from
        value = (low + high) / 2
        self._recent.append(value)
        bisect.insort(self._sorted, value)
        if len(self._recent) > self._window:
            old = self._recent.pop(0)
            del self._sorted[bisect.bisect_left(self._sorted, old)]

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the observed latencies, or None before enough data."""
        if len(self._sorted) < 8:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(q * len(self._sorted)))]

    def first_delay(self) -> float:
        """Seconds after submitting to poll first."""
        q40 = self.quantile(0.4)
        if q40 is None:
            return self.first_poll_delay
        # Every 10th job starts early, so latencies below the aim stay observed.
        if next(self._explore) % 10 == 0:
            return max(self.interval, self._sorted[0])
        return max(self.interval, q40 + self.interval)

    def next_delay(self, elapsed: float, previous: float) -> float:
        """Seconds until the next poll of a job ``elapsed`` seconds old."""
        q95 = self.quantile(0.95)
        if q95 is None or elapsed < q95 + self.interval:
            return self.interval
        return min(self.max_interval, max(self.interval, previous * 1.5))


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

    def pop_due(self, now: float) -> list[Entry]:
        """Take every token due at ``now``."""
        out = []
        while self._heap and self._heap[0].due <= now:
            out.append(heapq.heappop(self._heap))
        return out
