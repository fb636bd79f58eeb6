"""Retry policy for calls to the service, built with tenacity.

Only errors the client marks ``retryable`` are retried (a caller may narrow
that further with ``retry_if``: an upload does not resend an ambiguous
failure freely). A 429, or a 503 with Retry-After, pauses every request of
the run (the ``RateGate``) until its Retry-After has passed, unless it asks
for more than ``max_retry_after``: that is an outage, not a pause, and the
call ends at once with ``RetryAfterTooLong``. Other 5xx and
network errors back off exponentially with jitter. The clock and
sleep are injectable so tests of backoff take milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from tagger.client.protocol import APIError, RateLimited, ServerError, TransientError

if TYPE_CHECKING:
    import tenacity

__all__ = ["RateGate", "RetryPolicy", "RetryAfterTooLong", "call"]

T = TypeVar("T")


class RateGate:
    """Holds every request back while the service has asked for a pause."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._open_at = 0.0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        """Close the gate for ``seconds`` from now (a later deadline wins)."""
        with self._lock:
            until = self._clock() + seconds
            if until > self._open_at:
                self._open_at = until
                self.pauses += 1

    def wait(self) -> None:
        """Block until the gate is open."""
        while True:
            with self._lock:
                delay = self._open_at - self._clock()
            if delay <= 0:
                return
            self._sleep(delay)

    @property
    def paused_for(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        with self._lock:
            return max(0.0, self._open_at - self._clock())


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request: attempts and a total time budget."""

    attempts: int = 6
    budget: float = 120.0
    initial: float = 0.5
    maximum: float = 30.0
    default_retry_after: float = 5.0
    max_retry_after: float = 120.0


class RetryAfterTooLong(TransientError):
    """The service asked for a longer pause than ``max_retry_after``: an outage (the request was not received)."""

    def __init__(self, description: str, retry_after: float) -> None:
        super().__init__(description, ambiguous=False)
        self.retry_after = retry_after


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, APIError) and exc.retryable


def _pause_for(exc: BaseException | None, policy: RetryPolicy) -> float | None:
    """Seconds the whole run should hold back after ``exc`` (a 429, a 503 with Retry-After), else None."""
    if isinstance(exc, RateLimited):
        return exc.retry_after if exc.retry_after is not None else policy.default_retry_after
    if isinstance(exc, ServerError) and exc.retry_after is not None:
        return exc.retry_after
    return None


def call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    gate: RateGate,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException], None] | None = None,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call ``fn`` through the gate, retrying transient errors per ``policy``.

    ``retry_if`` (called once per retryable failure) may refuse a retry.
    Re-raises the last error when the attempts or the budget are spent.
    """
    import tenacity  # here: a run that calls nothing never imports it

    def too_long(exc: BaseException) -> bool:
        pause = _pause_for(exc, policy)
        return pause is not None and pause > policy.max_retry_after

    def may_retry(exc: BaseException) -> bool:
        return _is_retryable(exc) and not too_long(exc) and (retry_if is None or retry_if(exc))

    def before(_state: tenacity.RetryCallState) -> None:
        gate.wait()

    def after_failure(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = _pause_for(exc, policy)
        if pause is not None and pause <= policy.max_retry_after:
            gate.pause(pause)
        if on_retry is not None and exc is not None:
            on_retry(exc)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(may_retry),
        stop=tenacity.stop_after_attempt(policy.attempts) | tenacity.stop_after_delay(policy.budget),
        # A 429's pause is served by the gate; the jittered backoff spreads the rest.
        wait=tenacity.wait_exponential_jitter(multiplier=policy.initial, max=policy.maximum),
        before=before,
        after=after_failure,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except (RateLimited, ServerError) as exc:
        pause = _pause_for(exc, policy)
        if pause is not None and pause > policy.max_retry_after:
            raise RetryAfterTooLong(
                f"{exc.description}: the service asked to wait {pause:g} s (Retry-After), more than "
                f"max_retry_after ({policy.max_retry_after:g} s); treated as an outage",
                pause,
            ) from exc
        # The last attempt's 429 (or 503 with Retry-After) still holds the other workers back.
        if pause is not None:
            gate.pause(pause)
        raise
