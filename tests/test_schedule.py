"""The poll schedule and the latency model that aims first polls (simulated time, no sleeping)."""

from __future__ import annotations

import heapq
import random
import statistics
from collections import Counter

import pytest

from tagger.pipeline.latency import LatencyModel, turnbull
from tagger.pipeline.schedule import Entry, Schedule


def test_schedule_pops_in_due_order_only_when_due():
    s = Schedule()
    for due, job in [(5.0, 1), (1.0, 2), (3.0, 3)]:
        s.add(Entry(due, job, f"t{job}", 0.0))
    assert s.next_due() == 1.0
    assert [e.job_id for e in s.pop_due(3.0)] == [2, 3]
    assert len(s) == 1 and s.next_due() == 5.0
    assert s.pop_due(4.9) == []
    assert Schedule().next_due() is None


def test_without_history_first_polls_spread_up_to_the_documented_wait():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0)
    assert [m.first_delay() for _ in range(8)] == [1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
    assert m.next_delay(5.0, 1.0) == 1.0
    assert m.quantile(0.5) is None


def test_turnbull_puts_censored_mass_where_the_exact_data_says():
    # Bins of 1: 10 exact in bin 2, 10 exact in bin 5, 20 known only as "at most 6".
    p = turnbull(Counter({(2, 3): 10, (5, 6): 10, (0, 6): 20}), 8)
    assert sum(p) == pytest.approx(1.0)
    assert p[2] == pytest.approx(0.5, abs=1e-3) and p[5] == pytest.approx(0.5, abs=1e-3)
    assert p[0] == p[1] == p[3] == p[4] == p[6] == p[7] == 0.0


def test_turnbull_without_earlier_evidence_places_censored_mass_late():
    # Only "done by 6", and one probe "still working at 4, done by 7": mass goes to [4, 6).
    p = turnbull(Counter({(0, 6): 30, (4, 7): 1}), 8)
    assert sum(p[:4]) == 0.0
    assert sum(p[4:6]) == pytest.approx(1.0)


def simulate(latency, n=600, in_flight=32, interval=1.0, seed=1, **kw):
    """Drive the model as the dispatcher does, on simulated time; returns (polls/job, median delay, wall, model)."""
    model = LatencyModel(4.0 * interval, interval, 10.0 * interval, seed=seed, **kw)
    rnd = random.Random(seed)
    events: list = []
    submitted = polls = 0
    delays = []
    t = 0.0

    def submit(now: float) -> None:
        nonlocal submitted
        submitted += 1
        heapq.heappush(events, (now + model.first_delay(), submitted, now, latency(rnd), None, interval))

    for _ in range(in_flight):
        submit(0.0)
    while events:
        t, job, at, needs, last, gap = heapq.heappop(events)
        polls += 1
        if t - at >= needs:
            model.observe(0.0 if last is None else last - at, t - at)
            delays.append(t - at - needs)
            if submitted < n:
                submit(t)
        else:
            gap = model.next_delay(t - at, gap)
            heapq.heappush(events, (t + gap, job, at, needs, t, gap))
    return polls / n, statistics.median(delays), t, model


def test_uniform_6_to_12_meets_the_poll_and_delay_targets():
    polls, delay, wall, model = simulate(lambda r: r.uniform(6.0, 12.0), n=1000)
    assert polls <= 2.0
    assert delay <= 1.0
    assert wall <= 1.25 * 1000 * 9.0 / 32
    assert 8.5 <= model.quantile(0.5) <= 9.5  # the true median is 9


def test_a_fixed_latency_is_polled_once_right_when_done():
    polls, delay, wall, model = simulate(lambda r: 0.98)
    assert polls <= 1.15
    assert delay <= 0.05
    assert model.first_delay() in (pytest.approx(1.0), pytest.approx(1.0, abs=1.0))
    aims = [model.first_delay() for _ in range(200)]
    assert statistics.median(aims) == pytest.approx(1.0, abs=0.03)


def test_scaled_timings_scale_the_aim():
    polls, delay, _, model = simulate(lambda r: r.uniform(0.6, 1.2), n=1000, interval=0.1)
    assert polls <= 2.0 and delay <= 0.1
    assert 0.85 <= statistics.median(model.first_delay() for _ in range(100)) <= 1.1


def test_a_long_tail_is_polled_sparsely():
    # One job in ten takes 40 s: polling those every second would cost ~28 polls each.
    polls, _, _, model = simulate(lambda r: 40.0 if r.random() < 0.1 else r.uniform(6.0, 12.0))
    assert polls <= 2.5
    assert model.next_delay(15.0, 1.0) >= 5.0  # nothing finishes between 12 s and 40 s
    assert model.next_delay(9.0, 1.0) == 1.0


def test_older_than_anything_seen_backs_off_to_the_maximum():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0, min_observations=4)
    for t in (5.0, 6.0, 7.0, 8.0):
        m.observe(t - 1.0, t)
    assert m.next_delay(20.0, 1.0) == 1.5
    assert m.next_delay(30.0, 8.0) == 10.0


def test_budget_trades_polls_for_detection_time():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0)
    rnd = random.Random(3)
    for _ in range(400):
        t = rnd.uniform(6.0, 12.0)
        m.observe(t - 1.0 + rnd.random() * 0.0, t)
    early_polls, early_detect = m.expected(7.0)
    late_polls, late_detect = m.expected(11.0)
    assert early_polls > late_polls and early_detect < late_detect
    aim = statistics.median(m.first_delay() for _ in range(100))
    polls, _ = m.expected(aim)
    assert polls <= m.poll_budget + 1e-9


def test_jobs_still_working_keep_the_first_completions_from_looking_typical():
    from tagger.pipeline.latency import LatencyModel

    def model(with_working: bool) -> LatencyModel:
        m = LatencyModel(4.0, 1.0, 10.0, seed=1)
        for i in range(8):  # the first jobs back are the fast ones
            m.observe(5.5 + i * 0.05, 6.5 + i * 0.05, key=i)
        if with_working:
            for j in range(24):  # the rest of the first batch, still working when last polled
                m.working(100 + j, 7.0 + (j % 3))
        return m

    naive, censored = model(False), model(True)
    assert naive.quantile(0.5) < 7.0
    assert censored.quantile(0.5) >= 8.0
    assert censored.first_delay() > naive.first_delay()
    censored.forget(100)
    censored.observe(8.0, 9.0, key=101)  # settled: no longer counted as working
    assert censored._working.keys().isdisjoint({100, 101})
