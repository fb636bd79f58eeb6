"""Client-side pacing: the requests-per-second limiter and the AIMD in-flight limit, on a fake clock."""

from __future__ import annotations

import threading

import pytest
from helpers import FakeClock

from tagger.client.pacing import InFlightLimit, RateLimiter


def test_limiter_is_off_by_default_and_never_waits():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    assert not limiter.enabled
    assert [limiter.acquire() for _ in range(100)] == [0.0] * 100
    assert clock.sleeps == []


def test_limiter_spaces_requests_to_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(4.0, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(9):
        limiter.acquire()
        sent.append(clock.now)
    assert sent == pytest.approx([0.25 * i for i in range(9)])
    assert limiter.waited == pytest.approx(2.0)


def test_limiter_allows_a_burst_after_a_quiet_spell_then_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=3, clock=clock, sleep=clock.sleep)
    clock.now = 100.0
    delays = [limiter.reserve() for _ in range(5)]
    assert delays == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0])


def test_limiter_reservations_from_threads_never_share_a_slot():
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    delays: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            d = limiter.reserve()
            with lock:
                delays.append(d)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(round(d, 6) for d in delays) == [round(0.1 * i, 6) for i in range(200)]


def test_limiter_rejects_nonsense():
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1.0, burst=0)


def test_aimd_halves_on_429_once_per_episode_and_never_below_minimum():
    clock = FakeClock()
    limit = InFlightLimit(32, minimum=2, clock=clock)
    assert limit.limit == 32
    limit.on_rate_limited(1.0)
    limit.on_rate_limited(1.0)  # the same burst: one decrease
    assert limit.limit == 16 and limit.decreases == 1
    clock.now += 1.0
    for _ in range(5):
        limit.on_rate_limited(1.0)
        clock.now += 1.0
    assert limit.limit == 2 and limit.decreases == 6


def test_aimd_grows_by_one_per_window_of_successes_after_the_pause():
    clock = FakeClock()
    limit = InFlightLimit(32, clock=clock)
    limit.on_rate_limited(2.0)
    assert limit.limit == 16
    for _ in range(20):
        limit.on_success()  # inside the Retry-After pause: no growth
    assert limit.limit == 16
    clock.now = 2.0
    for _ in range(15):
        limit.on_success()
    assert limit.limit == 16
    for _ in range(2):
        limit.on_success()
    assert limit.limit == 17
    for _ in range(2000):
        limit.on_success()
    assert limit.limit == 32


def test_aimd_rejects_nonsense():
    with pytest.raises(ValueError):
        InFlightLimit(4, minimum=5)
    with pytest.raises(ValueError):
        InFlightLimit(4, decrease=1.0)


def test_aimd_with_a_fixed_ramp_regains_one_slot_per_n_successes():
    clock = FakeClock()
    limit = InFlightLimit(32, decrease=0.7, per=4, clock=clock)
    limit.on_rate_limited(1.0)
    assert limit.limit == 22  # 32 x 0.7
    clock.now = 1.0
    for _ in range(4):
        limit.on_success()
    assert limit.limit == 23
    for _ in range(36):
        limit.on_success()
    assert limit.limit == 32
