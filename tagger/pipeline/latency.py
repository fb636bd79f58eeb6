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
job within a budget (later polls following ``next_delay``). The budget is
the run's: the model counts the polls of every job it has seen polled
(those still working with the polls the estimate expects them still to
take), and what the run spent over budget the next jobs pay back, what it
saved they spend. An estimate's error, or a first run's probing, then
moves the aim, not the run's polls per job. A few jobs probe
up to one interval earlier than the aim, so the distribution just below it
stays observed and the aim can move down when the service speeds up.
Later polls come every ``interval`` while a job is within the usual
latency, then back off; never faster than one poll per ``interval`` per token.

Before any history, a *prior* (the service's documented latency range)
stands in for the data: it counts as ``prior_weight`` observations spread
over the range, so the first jobs of a first run are aimed as well as a later
run's. It is a guess, not the truth: the first answer the range cannot
explain (a job done well before it starts, or still working well after it
ends) drops it, and the model goes on from the real answers alone. So that
such answers come early, the first jobs of a run without history probe a
ladder of earlier first polls (0.55 of the aim, 0.3, ... down to one
interval). Every refit bumps ``version``; the dispatcher then re-aims the
polls of jobs already in flight.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["LatencyModel", "turnbull"]

# Latencies are binned at interval / _BINS_PER_INTERVAL; a long tail coarsens the bins instead.
_BINS_PER_INTERVAL = 40
_MAX_BINS = 1500
_EM_ITERATIONS = 200
_EM_TOLERANCE = 1e-7
# Probes poll up to this fraction of the aim (at least one interval) earlier.
_PROBE_SPAN = 0.35
# Before any history and without a prior, first polls are spread over this many steps up to first_poll_delay.
_WARMUP_STEPS = 4
# An observation contradicts the prior only this far (a fraction of its bounds) outside it: the
# client's clock starts when the service answers the upload, a little after the service's.
_PRIOR_MARGIN = 0.05
# Rungs of the probe ladder: the aim times this, its square, ... down to one interval.
_RUNG = 0.55


def turnbull(intervals: Mapping[tuple[int, int], float], bins: int) -> list[float]:
    """Probability per bin of a latency observed only as bin ranges ``[a, b)`` (with counts).

    The self-consistency (EM) algorithm, started on the innermost intervals:
    the bin ranges where a left end is directly followed by a right end. No
    observation ends inside one, so each is covered whole or not at all and
    keeps its start's even spread over its bins: EM runs on the innermost
    intervals, not on every bin (the same iterates, far fewer of them).
    """
    events = sorted([(b, 0) for (a, b) in intervals] + [(a, 1) for (a, b) in intervals])
    # A left end (kind 1) directly followed by a right end (kind 0): an innermost interval.
    segments = [
        (pos, next_pos)
        for (pos, kind), (next_pos, next_kind) in itertools.pairwise(events)
        if kind == 1 and next_kind == 0
    ]
    starts = [a for a, _ in segments]
    ends = [b for _, b in segments]
    lengths = [b - a for a, b in segments]
    total = sum(lengths)
    q = [length / total for length in lengths]  # mass per innermost interval
    n = sum(intervals.values())
    # Each observation covers a run of innermost intervals: [first, last).
    pairs = [
        (bisect.bisect_left(starts, a), bisect.bisect_right(ends, b), count) for (a, b), count in intervals.items()
    ]
    m = len(segments)
    for _ in range(_EM_ITERATIONS):
        prefix = [0.0]
        for value in q:
            prefix.append(prefix[-1] + value)
        # Each observation spreads its weight over what it covers in proportion to q;
        # a difference array adds weight/mass to every interval of [first, last) at once.
        diff = [0.0] * (m + 1)
        for first, last, count in pairs:
            mass = prefix[last] - prefix[first]
            if mass > 0:
                w = count / mass
                diff[first] += w
                diff[last] -= w
        running = 0.0
        new = []
        for j in range(m):
            running += diff[j]
            new.append(q[j] * running / n)
        change = max(abs(x - y) / length for x, y, length in zip(new, q, lengths, strict=True))
        q = new
        if change < _EM_TOLERANCE:
            break
    p = [0.0] * bins
    for (a, b), mass, length in zip(segments, q, lengths, strict=True):
        for j in range(a, b):
            p[j] = mass / length
    return p


@dataclass(frozen=True)
class _Plan:
    width: float  # seconds per bin
    cdf: list[float]  # cdf[k]: probability the latency is at most k * width
    aim: float = 0.0  # first-poll delay
    high: float = 0.0  # 95th percentile: past it, polls back off
    budget: float = 0.0  # expected polls per job the aim was chosen to spend

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
        prior: tuple[float, float] | None = None,
        prior_weight: float = 8.0,
        poll_budget: float = 1.6,
        probe_rate: float = 0.05,
        hazard: float = 0.25,
        min_observations: int = 8,
        seed: int | None = None,
        budget_horizon: float = 32.0,
    ) -> None:
        self.first_poll_delay = first_poll_delay
        self.interval = interval
        self.max_interval = max_interval
        self.poll_budget = poll_budget
        self.probe_rate = probe_rate
        self.hazard = hazard
        self.min_observations = min_observations
        self.budget_horizon = budget_horizon
        if prior is not None and not 0 < prior[0] <= prior[1]:
            raise ValueError(f"a latency prior must satisfy 0 < low <= high, got {prior!r}")
        self.prior = prior
        self.prior_weight = prior_weight
        self._recent: deque[tuple[float, float]] = deque(maxlen=window)
        # Jobs still working at their last poll: right-censored latencies ("longer than this").
        self._working: dict[object, float] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._plan: _Plan | None = None
        self._stale = 0
        self._version = 0
        self._warmup = itertools.count()
        self._contradicted = False
        # Leads (fractions of the aim to poll earlier) still to hand out on the probe ladder.
        self._ladder: list[float] | None = None
        # This run's polls (the account that corrects the budget): per job still in flight, and in
        # all over the jobs it saw completed.
        self._polls_of: Counter[object] = Counter()
        self._spent = 0
        self._completed = 0

    @property
    def prior_active(self) -> bool:
        """Whether the prior still stands in for data (given, and not contradicted by an answer)."""
        return self.prior is not None and not self._contradicted

    @property
    def version(self) -> int:
        """Bumped by every refit of the estimate: polls aimed with an older one may be re-aimed."""
        self._current()
        return self._version

    def observe(self, low: float, high: float, key: object = None) -> None:
        """Record that a job was still working at ``low`` seconds and done at ``high``."""
        low = max(0.0, low)
        high = max(high, low)
        with self._lock:
            self._recent.append((low, high))
            self._stale += 1
            self._working.pop(key, None)
            if key is not None:
                self._spent += self._polls_of.pop(key, 0) + 1
                self._completed += 1
            if self.prior is not None:
                lo, hi = self.prior
                if high <= lo * (1 - _PRIOR_MARGIN) or low >= hi * (1 + _PRIOR_MARGIN):
                    self._contradict()

    def working(self, key: object, age: float) -> None:
        """Record that a job in flight was still working ``age`` seconds after it was sent.

        Without these, the first completions (the fastest jobs) would make the
        service look quicker than it is, and early first polls would be wasted.
        """
        with self._lock:
            self._working[key] = max(0.0, age)
            self._polls_of[key] += 1
            if self.prior is not None and age >= self.prior[1] * (1 + _PRIOR_MARGIN):
                self._contradict()

    def forget(self, key: object) -> None:
        """The job settled without a latency worth learning (skipped, timed out)."""
        with self._lock:
            self._working.pop(key, None)
            self._polls_of.pop(key, None)

    @property
    def budget(self) -> float:
        """Expected polls per job the current aim may spend: ``poll_budget``, corrected by what this run spent.

        Every job polled so far counts: a settled one with the polls it took, one
        still working with the polls it took plus those the estimate expects it
        still to take. Polls over budget (a first run's probes, an estimate that
        proved optimistic) are paid back by the next ``budget_horizon`` jobs,
        polls saved are spent on them (within half a poll either way), so the
        run's polls per job keep to ``poll_budget`` whatever the estimate's error.
        """
        plan = self._current()
        return self.poll_budget if plan is None else plan.budget

    def quantile(self, q: float) -> float | None:
        """The q-quantile of the estimated latency distribution, or None before enough data."""
        plan = self._current()
        return None if plan is None else plan.quantile(q)

    def aim(self) -> float | None:
        """The first-poll delay of a job that does not probe, or None before enough data."""
        plan = self._current()
        return None if plan is None else plan.aim

    def first_lead(self) -> float:
        """How much earlier than the aim a new job polls first, as a fraction of the aim (0: at the aim).

        Draw one per submission and keep it with the job: ``first_delay(lead)``
        turns it into seconds with the estimate of the moment, so a re-aimed
        probe stays a probe.
        """
        plan = self._current()
        with self._lock:
            if plan is None:
                # No history, no prior: spread the first polls from one interval up to the
                # documented wait: fast services are learned at once, slow ones cost the
                # early pollers a few extra polls.
                step = next(self._warmup) % _WARMUP_STEPS
                low = min(self.interval, self.first_poll_delay)
                delay = low + (self.first_poll_delay - low) * step / (_WARMUP_STEPS - 1)
                return 1.0 - delay / self.first_poll_delay if self.first_poll_delay > 0 else 0.0
            if self._ladder is None:
                # A run without history probes the ladder once; a run with history has answers already.
                self._ladder = [] if self._recent else self._rungs(plan.aim)
            if self._ladder:
                return self._ladder.pop()
            probe = self._rng.random() < self.probe_rate
            early = self._rng.uniform(0.0, max(self.interval, _PROBE_SPAN * plan.aim))
        return min(1.0, early / plan.aim) if probe and plan.aim > 0 else 0.0

    def first_delay(self, lead: float | None = None) -> float:
        """Seconds after submitting to poll first (``lead`` from ``first_lead``; drawn when None)."""
        if lead is None:
            lead = self.first_lead()
        plan = self._current()
        if plan is None:
            return self.first_poll_delay * (1.0 - lead)
        if lead <= 0.0:
            return plan.aim
        return max(plan.width, plan.aim * (1.0 - lead))

    def next_delay(self, elapsed: float, previous: float, *, probed: bool = False) -> float:
        """Seconds until the next poll of a job ``elapsed`` seconds old.

        ``probed``: that poll was the job's first and came early (a lead above
        0). Having found it working, the probe has told what it could: the job
        is next polled at the aim, with every other job, not every interval.
        """
        plan = self._current()
        if probed and plan is not None and elapsed < plan.aim - self.interval:
            return plan.aim - elapsed
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

    def _contradict(self) -> None:
        """An answer the prior cannot explain: from now on only answers count (lock held)."""
        if not self._contradicted:
            self._contradicted = True
            self._plan = None  # refit at once, without the prior

    def _rungs(self, aim: float) -> list[float]:
        """Leads of the probe ladder (0.55 of the aim, 0.3, ... down to one interval), to pop() from the top down."""
        leads: list[float] = []
        fraction = _RUNG
        while aim * fraction >= self.interval - 1e-9 and len(leads) < 8:
            leads.append(1.0 - fraction)
            fraction *= _RUNG
        return leads[::-1]

    def _current(self) -> _Plan | None:
        with self._lock:
            prior = self.prior if self.prior_active else None
            if self.prior is None and len(self._recent) < self.min_observations:
                return None
            if prior is None and not self._recent and not self._working:
                return None  # a contradicted prior with nothing else to go on yet (never, in practice)
            # Refitting costs milliseconds: do it while learning fast, then every few jobs.
            if self._plan is None or self._stale >= min(16, max(1, len(self._recent) // 8)):
                polled = [(self._polls_of[key], age) for key, age in self._working.items()]
                self._plan = self._fit(
                    list(self._recent), list(self._working.values()), prior, (self._completed, self._spent, polled)
                )
                self._stale = 0
                self._version += 1
            return self._plan

    def _fit(
        self,
        observations: list[tuple[float, float]],
        still_working: Sequence[float] = (),
        prior: tuple[float, float] | None = None,
        account: tuple[int, int, list[tuple[int, float]]] = (0, 0, []),
    ) -> _Plan:
        longest = max(
            [0.0]
            + [high for _, high in observations]
            + [age + self.interval for age in still_working]
            + ([prior[1] + self.interval] if prior else [])
        )
        width = max(self.interval / _BINS_PER_INTERVAL, longest / _MAX_BINS)
        bins = int(longest / width) + 2
        intervals: defaultdict[tuple[int, int], float] = defaultdict(float)  # weights: a prior's are fractions
        if prior is not None:
            # The documented range as prior_weight observations, evenly spread over its bins in slots
            # of a quarter interval (finer slots only slow the fit down).
            first = min(int(prior[0] / width + 1e-9), bins - 1)
            last = min(max(first + 1, math.ceil(prior[1] / width - 1e-9)), bins)
            slot = max(1, int(self.interval / 4 / width))
            for k in range(first, last, slot):
                end = min(k + slot, last)
                intervals[(k, end)] += self.prior_weight * (end - k) / (last - first)
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
        budget = self._budget(plan, *account)
        best: tuple[float, float, float] | None = None
        for k in range(1, len(cdf)):
            if cdf[k] - cdf[k - 1] <= 0 and k != len(cdf) - 1:
                continue  # aiming inside an empty bin only delays detection
            polls, detect = self._evaluate(plan, k * width)
            if polls > budget + 1e-9:
                continue
            if best is None or detect < best[1] - 1e-9:
                best = (polls, detect, k * width)
        aim = best[2] if best is not None else (len(cdf) - 1) * width
        return _Plan(width, cdf, max(aim, width), plan.high, budget)

    def _budget(self, plan: _Plan, completed: int, spent: int, polled: list[tuple[int, float]]) -> float:
        """``poll_budget`` corrected by the polls this run's jobs spent and (still working) will spend, per ``plan``."""
        jobs = completed + len(polled)
        if not jobs:
            return self.poll_budget
        polls = spent + sum(n + self._remaining(plan, age) for n, age in polled)
        correction = (self.poll_budget * jobs - polls) / max(1.0, self.budget_horizon)
        return max(1.0, self.poll_budget + max(-0.5, min(0.5, correction)))

    def _remaining(self, plan: _Plan, age: float) -> float:
        """Expected further polls of a job found still working at ``age``, per ``plan``."""
        working = 1.0 - plan.done_by(age)
        if working <= 1e-9:
            return 1.0
        polls, t, gap, alive = 0.0, age, self.interval, 1.0
        while alive > 1e-3 and t <= len(plan.cdf) * plan.width:
            gap = self._gap(plan, t, gap)
            t += gap
            polls += alive
            alive = (1.0 - plan.done_by(t)) / working
        return polls

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
