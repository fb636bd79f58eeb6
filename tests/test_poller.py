"""The poll schedule and the latency model that aims first polls."""

from __future__ import annotations

import random

from tagger.poller import Entry, LatencyModel, Schedule


def test_schedule_pops_in_due_order_only_when_due():
    s = Schedule()
    for due, job in [(5.0, 1), (1.0, 2), (3.0, 3)]:
        s.add(Entry(due, job, f"t{job}", 0.0))
    assert s.next_due() == 1.0
    assert [e.job_id for e in s.pop_due(3.0)] == [2, 3]
    assert len(s) == 1 and s.next_due() == 5.0
    assert s.pop_due(4.9) == []


def test_without_history_the_documented_first_wait_is_used():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0)
    assert m.first_delay() == 4.0
    assert m.next_delay(5.0, 1.0) == 1.0


def test_first_poll_aims_past_the_40th_percentile_and_later_polls_back_off():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0)
    rnd = random.Random(3)
    for _ in range(200):
        t = rnd.uniform(6, 12)
        m.observe(t - 0.5, t + 0.5)
    delays = [m.first_delay() for _ in range(20)]
    aimed = [d for d in delays if d > 6.5]
    assert len(aimed) == 18  # every 10th explores early
    assert all(8.8 <= d <= 9.9 for d in aimed)
    assert min(delays) < 6.5
    assert m.next_delay(8.0, 1.0) == 1.0
    assert m.next_delay(14.0, 1.0) == 1.5
    assert m.next_delay(30.0, 8.0) == 10.0


def test_loose_observations_are_not_learned():
    m = LatencyModel(first_poll_delay=4.0, interval=1.0, max_interval=10.0)
    for _ in range(50):
        m.observe(0.0, 9.0)
    assert m.quantile(0.5) is None
