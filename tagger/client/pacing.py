"""Client-side pacing: a requests-per-second limit and an AIMD in-flight limit.

``RateLimiter`` spaces requests to at most ``rate`` per second (with a small
burst); it is off (never waits) when ``rate`` is None, the default.

``InFlightLimit`` adapts how many jobs may be in flight: on a 429 it
multiplies the limit by ``decrease`` (once per congestion episode: the 429s
of one burst arrive together and count once), and every success adds
``increase / limit``, so the limit climbs back by ``increase`` per round of
successes, as TCP's congestion window does; or ``increase / per`` with a fixed
``per``, for a service whose round trip (a job: seconds) is too long for
per-round growth to recover in useful time. Both are thread-safe; the clock
and sleep are injectable so tests run on a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimiter", "InFlightLimit"]


class RateLimiter:
    """At most ``rate`` requests per second, ``burst`` at once; off when ``rate`` is None."""

    def __init__(
        self,
        rate: float | None = None,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive or None, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # The theoretical arrival time of the next request (GCRA): one spacing per request.
        self._next = float("-inf")
        self.waited = 0.0

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self.rate is not None

    def reserve(self) -> float:
        """Claim the next request slot; returns the seconds to wait before sending."""
        if self.rate is None:
            return 0.0
        spacing = 1.0 / self.rate
        with self._lock:
            now = self._clock()
            slot = max(self._next, now - (self.burst - 1) * spacing)
            self._next = slot + spacing
            # The burst allowance lets the first requests of a quiet spell go at once.
            delay = max(0.0, slot - now)
            self.waited += delay
            return delay

    def acquire(self) -> float:
        """Block until a request may go; returns the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._sleep(delay)
        return delay


class InFlightLimit:
    """An in-flight limit between ``minimum`` and ``maximum``: additive increase, multiplicative decrease."""

    def __init__(
        self,
        maximum: int,
        minimum: int = 1,
        *,
        increase: float = 1.0,
        decrease: float = 0.5,
        episode: float = 1.0,
        per: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum!r}, {maximum!r}")
        if not 0.0 < decrease < 1.0 or increase <= 0:
            raise ValueError("decrease must be in (0, 1) and increase positive")
        self.maximum = maximum
        self.minimum = minimum
        self.increase = increase
        self.decrease = decrease
        self.episode = episode
        # Successes per ``increase``: the current limit (TCP's once per round) when None.
        self.per = per
        self._clock = clock
        self._lock = threading.Lock()
        self._value = float(maximum)
        self._quiet_after = float("-inf")
        self.decreases = 0

    @property
    def limit(self) -> int:
        """Jobs that may be in flight now."""
        with self._lock:
            return max(self.minimum, int(self._value))

    def on_success(self) -> None:
        """A request got through: grow by ``increase`` per ``limit`` successes."""
        with self._lock:
            if self._clock() < self._quiet_after:
                return  # still inside the pause that the last 429 asked for
            self._value = min(float(self.maximum), self._value + self.increase / (self.per or self._value))

    def on_rate_limited(self, retry_after: float | None = None) -> None:
        """A 429: shrink once per episode (``retry_after`` or ``episode`` seconds)."""
        with self._lock:
            now = self._clock()
            hold = max(self.episode, retry_after or 0.0)
            if now >= self._quiet_after:
                self._value = max(float(self.minimum), self._value * self.decrease)
                self.decreases += 1
            self._quiet_after = max(self._quiet_after, now + hold)
