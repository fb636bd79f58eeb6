"""The retry policy: transient errors retried within bounds, 429 pauses everyone."""

from __future__ import annotations

import pytest
from helpers import FakeClock

from tagger.client.cloudsight import AuthError, NetworkError, RateLimited, ServerError
from tagger.client.retry import RateGate, RetryPolicy, call


def failing(errors, result="ok"):
    errors = list(errors)
    calls = []

    def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def test_transient_errors_are_retried_with_bounded_backoff():
    clock = FakeClock()
    fn, calls = failing([ServerError("boom", 503), NetworkError("down"), ServerError("boom", 502)])
    policy = RetryPolicy(attempts=5, budget=100, initial=0.5, maximum=4.0)
    assert call(fn, policy=policy, gate=RateGate(clock, clock.sleep), sleep=clock.sleep) == "ok"
    assert len(calls) == 4
    assert len(clock.sleeps) == 3
    assert all(0 < s <= 4.0 + 1.0 for s in clock.sleeps)  # max plus jitter


def test_attempts_are_bounded_then_the_error_is_raised():
    clock = FakeClock()
    fn, calls = failing([ServerError("boom", 500)] * 10)
    with pytest.raises(ServerError):
        call(fn, policy=RetryPolicy(attempts=3, budget=100), gate=RateGate(clock, clock.sleep), sleep=clock.sleep)
    assert len(calls) == 3


def test_permanent_errors_are_not_retried():
    clock = FakeClock()
    fn, calls = failing([AuthError("no")])
    with pytest.raises(AuthError):
        call(fn, policy=RetryPolicy(), gate=RateGate(clock, clock.sleep), sleep=clock.sleep)
    assert len(calls) == 1


def test_a_429_closes_the_gate_for_its_retry_after():
    clock = FakeClock()
    gate = RateGate(clock, clock.sleep)
    times = []

    def fn():
        times.append(clock.now)
        if len(times) == 1:
            raise RateLimited("slow down", retry_after=7.0)
        return "ok"

    assert call(fn, policy=RetryPolicy(initial=0.1, maximum=0.2), gate=gate, sleep=clock.sleep) == "ok"
    assert times[1] - times[0] >= 7.0
    # Another caller arriving while the window is open waits too.
    gate.pause(3.0)
    start = clock.now
    gate.wait()
    assert clock.now - start == pytest.approx(3.0)


def test_a_503_with_retry_after_closes_the_gate_too():
    clock = FakeClock()
    gate = RateGate(clock, clock.sleep)
    times = []

    def fn():
        times.append(clock.now)
        if len(times) == 1:
            raise ServerError("unavailable", 503, retry_after=6.0)
        return "ok"

    assert call(fn, policy=RetryPolicy(initial=0.1, maximum=0.2), gate=gate, sleep=clock.sleep) == "ok"
    assert times[1] - times[0] >= 6.0


def test_retry_if_refuses_what_the_caller_will_not_resend():
    clock = FakeClock()
    fn, calls = failing([NetworkError("refused", ambiguous=False)] * 3 + [ServerError("boom", 500)] * 3)
    resends = [1]

    def once_if_ambiguous(exc):
        if not exc.ambiguous:
            return True
        resends[0] -= 1
        return resends[0] >= 0

    with pytest.raises(ServerError):
        call(
            fn,
            policy=RetryPolicy(attempts=10, budget=100),
            gate=RateGate(clock, clock.sleep),
            sleep=clock.sleep,
            retry_if=once_if_ambiguous,
        )
    assert len(calls) == 3 + 2  # the free failures retried, the ambiguous one resent once
