"""How long the service takes to caption, learnt from polling; where to aim each first poll.

The model learns how long the service takes from what polling
actually tells us: each settled job says its latency lay in ``(low, high]``
(the last poll that found it working, the poll that found it done). A job
found done at its first poll is censored (all we know is "at most this
long"), so the model estimates the latency distribution with Turnbull's
nonparametric maximum likelihood for interval-censored data. Where nothing
was observed below the usual first poll it puts the mass as late as the
data allow, which never invites polling earlier than evidence supports.

From that distribution it picks the first-poll delay that gives the
earliest expected detection while keeping the expected number of polls per
job within a budget (later polls following ``next_delay``). A few jobs probe
up to one interval earlier than the aim, so the distribution just below it
stays observed and the aim can move down when the service speeds up.
Without history the documented 4 s first wait is used. Later polls come
every ``interval`` while a job is within the usual latency, then back off;
never faster than one poll per ``interval`` per token.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

__all__ = ["LatencyModel", "turnbull"]

# Latencies are binned at interval / _BINS_PER_INTERVAL; a long tail coarsens the bins instead.
_BINS_PER_INTERVAL = 40
_MAX_BINS = 1500
_EM_ITERATIONS = 200
_EM_TOLERANCE = 1e-7
# Probes poll up to this fraction of the aim (at least one interval) earlier.
_PROBE_SPAN = 0.35
# Before any history, first polls are spread over this many steps up to first_poll_delay.
_WARMUP_STEPS = 4


def turnbull(intervals: Counter[tuple[int, int]], bins: int) -> list[float]:
    """Probability per bin of a latency observed only as bin ranges ``[a, b)`` (with counts).

    The self-consistency (EM) algorithm, started on the innermost intervals:
    the bin ranges where a left end is directly followed by a right end.
    """
    events = sorted([(b, 0) for (a, b) in intervals] + [(a, 1) for (a, b) in intervals])
    support = [0] * bins
    for (pos, kind), (next_pos, next_kind) in zip(events, events[1:]):
        # A left end (kind 1) directly followed by a right end (kind 0): an innermost interval.
        if kind == 1 and next_kind == 0:
            for j in range(pos, next_pos):
                support[j] = 1
    total_support = sum(support)
    p = [s / total_support for s in support]
    n = sum(intervals.values())
    pairs = list(intervals.items())
    for _ in range(_EM_ITERATIONS):
        prefix = [0.0]
        for value in p:
            prefix.append(prefix[-1] + value)
        # Each observation spreads its weight over its bins in proportion to p;
        # a difference array adds weight/mass to every bin of [a, b) at once.
        diff = [0.0] * (bins + 1)
        for (a, b), count in pairs:
            mass = prefix[b] - prefix[a]
            if mass > 0:
                w = count / mass
                diff[a] += w
                diff[b] -= w
        running = 0.0
        new = []
        for j in range(bins):
            running += diff[j]
            new.append(p[j] * running / n)
        change = max(abs(x - y) for x, y in zip(new, p))
        p = new
        if change < _EM_TOLERANCE:
            break
    return p


@dataclass(frozen=True)
class _Plan:
    width: float  # seconds per bin
    cdf: list[float]  # cdf[k]: probability the latency is at most k * width
    aim: float = 0.0  # first-poll delay
    high: float = 0.0  # 95th percentile: past it, polls back off

    def quantile(self, q: float) -> float:
        for k, value in enumerate(self.cdf):
            if value >= q - 1e-12:
                return k * self.width
        return (len(self.cdf) - 1) * self.width

    def done_by(self, t: float) -> float:
        k = int(t / self.width + 1e-9)
        return self.cdf[min(k, len(self.cdf) - 1)]


class LatencyModel:
    """Service latencies observed in this run (seconds from submit to done); thread-safe."""

    def __init__(
        self,
        first_poll_delay: float,
        interval: float,
        max_interval: float,
        window: int = 500,
        *,
        poll_budget: float = 1.6,
        probe_rate: float = 0.05,
        hazard: float = 0.25,
        min_observations: int = 8,
        seed: int | None = None,
    ) -> None:
        self.first_poll_delay = first_poll_delay
        self.interval = interval
        self.max_interval = max_interval
        self.poll_budget = poll_budget
        self.probe_rate = probe_rate
        self.hazard = hazard
        self.min_observations = min_observations
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)
        # Jobs still working at their last poll: right-censored latencies ("longer than this").
        self._working: dict[object, float] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._plan: _Plan | None = None
        self._stale = 0
        self._warmup = itertools.count()

    def observe(self, low: float, high: float, key: object = None) -> None:
        """Record that a job was still working at ``low`` seconds and done at ``high``."""
        low = max(0.0, low)
        with self._lock:
            self._recent.append((low, max(high, low)))
            self._stale += 1
            self._working.pop(key, None)

    def working(self, key: object, age: float) -> None:
        """Record that a job in flight was still working ``age`` seconds after it was sent.

        Without these, the first completions (the fastest jobs) would make the
        service look quicker than it is, and early first polls would be wasted.
        """
        with self._lock:
            self._working[key] = max(0.0, age)

    def forget(self, key: object) -> None:
        """The job settled without a latency worth learning (skipped, timed out)."""
        with self._lock:
            self._working.pop(key, None)

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the estimated latency distribution, or None before enough data."""
        plan = self._current()
        return None if plan is None else plan.quantile(q)

    def first_delay(self) -> float:
        """Seconds after submitting to poll first."""
        plan = self._current()
        if plan is None:
            with self._lock:
                step = next(self._warmup) % _WARMUP_STEPS
            # Without history, spread the first polls from one interval up to the
            # documented wait: fast services are learned at once, slow ones cost
            # the early pollers a few extra polls.
            low = min(self.interval, self.first_poll_delay)
            return low + (self.first_poll_delay - low) * step / (_WARMUP_STEPS - 1)
        with self._lock:
            probe = self._rng.random() < self.probe_rate
            early = self._rng.uniform(0.0, max(self.interval, _PROBE_SPAN * plan.aim))
        if probe:
            return max(plan.width, plan.aim - early)
        return plan.aim

    def next_delay(self, elapsed: float, previous: float) -> float:
        """Seconds until the next poll of a job ``elapsed`` seconds old."""
        plan = self._current()
        return self._gap(plan, elapsed, previous)

    def expected(self, aim: float) -> tuple[float, float] | None:
        """(expected polls, expected seconds to detection) of a first poll at ``aim``, per the estimate."""
        plan = self._current()
        return None if plan is None else self._evaluate(plan, aim)

    # -- internals --------------------------------------------------------

    def _gap(self, plan: _Plan | None, elapsed: float, previous: float) -> float:
        if plan is None:
            return self.interval
        working = 1.0 - plan.done_by(elapsed)
        if working <= 1e-9:
            # Older than anything seen: back off.
            return min(self.max_interval, max(self.interval, previous * 1.5))
        # Wait (in whole intervals) until a poll is reasonably likely to find the job done,
        # so a long tail is polled sparsely and the bulk every interval.
        gap = self.interval
        while gap < self.max_interval and plan.done_by(elapsed + gap) - plan.done_by(elapsed) < self.hazard * working:
            gap += self.interval
        return min(gap, self.max_interval)

    def _current(self) -> _Plan | None:
        with self._lock:
            if len(self._recent) < self.min_observations:
                return None
            # Refitting costs milliseconds: do it while learning fast, then every few jobs.
            if self._plan is None or self._stale >= min(16, max(1, len(self._recent) // 8)):
                self._plan = self._fit(list(self._recent), list(self._working.values()))
                self._stale = 0
            return self._plan

    def _fit(self, observations: list[tuple[float, float]], still_working: list[float] = ()) -> _Plan:
        longest = max([high for _, high in observations] + [age + self.interval for age in still_working])
        width = max(self.interval / _BINS_PER_INTERVAL, longest / _MAX_BINS)
        bins = int(longest / width) + 2
        intervals: Counter[tuple[int, int]] = Counter()
        for low, high in observations:
            # The epsilons keep 1.0 / 0.1 from landing in the bin after 10.
            a = min(int(low / width + 1e-9), bins - 1)
            b = min(max(a + 1, math.ceil(high / width - 1e-9)), bins)
            intervals[(a, b)] += 1
        for age in still_working:
            intervals[(min(int(age / width + 1e-9), bins - 1), bins)] += 1
        p = turnbull(intervals, bins)
        cdf = [0.0]
        for value in p:
            cdf.append(min(1.0, cdf[-1] + value))
        plan = _Plan(width, cdf)
        plan = _Plan(width, cdf, high=plan.quantile(0.95))
        best: tuple[float, float, float] | None = None
        for k in range(1, len(cdf)):
            if cdf[k] - cdf[k - 1] <= 0 and k != len(cdf) - 1:
                continue  # aiming inside an empty bin only delays detection
            polls, detect = self._evaluate(plan, k * width)
            if polls > self.poll_budget + 1e-9:
                continue
            if best is None or detect < best[1] - 1e-9:
                best = (polls, detect, k * width)
        aim = best[2] if best is not None else (len(cdf) - 1) * width
        return _Plan(width, cdf, max(aim, width), plan.high)

    def _evaluate(self, plan: _Plan, aim: float) -> tuple[float, float]:
        polls = detect = 0.0
        t, done_before, gap = aim, 0.0, self.interval
        while True:
            polls += 1.0 - done_before
            done = plan.done_by(t)
            detect += t * (done - done_before)
            if done >= 1.0 - 1e-9 or t > len(plan.cdf) * plan.width:
                return polls, detect
            gap = self._gap(plan, t, gap)
            t, done_before = t + gap, done
