"""Progress of a run, phase by phase: files found, jobs sent, jobs captioned, sidecars written.

On a terminal each phase has a tqdm bar of its own; otherwise (cron, a pipe)
one line goes to the stream every ``interval`` seconds.

A total is shown only once it is final, so it never moves: a real run
streams (the walk and the sending overlap), and a total that grew as the
walk went on kept a bar below 100 % for the whole run. Until then a phase
shows its count alone. "found" gets its total when the walk is over
(``walk_done``); "sent" when, in addition, every file the walk streamed
has been read and claimed (the run then knows every job it will send:
``walk_over``); "captioned" then too, as those jobs plus the tokens earlier
runs left to poll. "sent" counts each of those jobs once, when it leaves
the queue: uploaded, or settled without an upload of its own (a similar
photo's caption, another machine's answer, an image that cannot be
prepared), so a run that is not stopped ends at 100 %. "written"
(sidecars) has no total. The walk hands at most a stream's worth of files
(256) ahead of the workers, so on a first run over a large new library the
totals, like the plan, come late: that run's walk is paced by its uploads.

The ETA needs the "sent" total: the jobs left to send at the rate they
left so far, then the median latency of the dispatcher's latency model for
the last of them to be answered.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["Progress", "eta_words"]

#: What callers count (the dispatcher, the walk, the runner) -> the phase it advances.
_PHASE = {
    "scanned": "found",  # files the walk found (per folder)
    "submitted": "sent",  # a job uploaded
    "unsent": "sent",  # a job to send settled (or handed another machine's token) without an upload of its own
    "settled": "captioned",  # a job answered (captioned, or skipped, timed out, failed)
    "written": "written",  # sidecars written
}
_PHASES = ("found", "sent", "captioned", "written")
_ASIDES = ("unsent", "uncaptioned", "unwritten")  # shown beside their phase
_TOTAL = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]"
_COUNT = "{desc}: {n_fmt} [{elapsed}, {rate_fmt}{postfix}]"


class _Quantiles(Protocol):
    def quantile(self, q: float) -> float | None: ...


def eta_words(seconds: float | None) -> str:
    """An ETA in words: ``ETA 1m05s``, ``ETA 2h03m``; None: ``no ETA yet``."""
    if seconds is None:
        return "no ETA yet"
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"ETA {s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"ETA {s // 60}m{s % 60:02d}s"
    return f"ETA {s}s"


class Progress:
    """Counts of the run's four phases, their final totals, a rate and an ETA; drawn as bars or as periodic lines.

    ``clock`` and ``heartbeat`` (seconds between checks by a daemon thread,
    None for none: the lines then come only as counts arrive) are for tests.
    ``on_plan`` shows the plan once the walk is over (``planned``).
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: float | None = 1.0,
        on_plan: Callable[[Any], None] | None = None,
    ) -> None:
        self.stream = stream or sys.stderr
        self.counts = dict.fromkeys((*_PHASES, *_ASIDES), 0)
        self.totals: dict[str, int | None] = dict.fromkeys(_PHASES)
        self.latency: _Quantiles | None = None  # the dispatcher's model, for the ETA
        self.walk_done: Callable[[], bool] | None = None  # whether the walk has ended, not cut short
        self.plan_shown = False
        #: The counts of the plan line shown at the end of the walk (files that fail to decode come later).
        self.shown_plan: dict[str, Any] | None = None
        self._enabled = enabled
        self._tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._interval = interval
        self._clock = clock
        self._last = clock()
        self._on_plan = on_plan
        self._to_send: int | None = None
        self._owed: int | None = None  # jobs to settle that this run does not send (tokens of earlier runs)
        self._first_sent: float | None = None
        self._last_sent: float | None = None
        self._bars: dict[str, tqdm] = {}
        self._lock = threading.RLock()
        self._closed = threading.Event()
        self._heartbeat = heartbeat
        self._ticker: threading.Thread | None = None

    # -- what the run reports --------------------------------------------------

    def __call__(self, what: str, n: int = 1) -> None:
        """Count ``n`` more of ``what`` (see ``_PHASE``; "owed", "uncaptioned", "unwritten" too)."""
        with self._lock:
            if what == "owed":
                self._owed = (self._owed or 0) + n
                self._fix_captioned()
            elif what in _ASIDES and what != "unsent":
                self.counts[what] += n
            else:
                phase = _PHASE[what]
                self.counts[phase] += n
                if what == "unsent":
                    self.counts["unsent"] += n
                if phase == "sent" and n:
                    now = self._clock()
                    self._first_sent = now if self._first_sent is None else self._first_sent
                    self._last_sent = now
                if self._tty and n:
                    self._bar(phase).update(n)
            self._start_ticker()
            self.tick()

    def walk_over(self, to_send: int) -> None:
        """The walk is over and every streamed file claimed: ``to_send`` jobs is this run's final queue."""
        with self._lock:
            self._set_total("found", self.counts["found"])
            self._to_send = to_send
            self._set_total("sent", to_send)
            self._fix_captioned()
            self.tick()

    def planned(self, plan: Any) -> None:
        """The plan is known (the walk is over): show it now, above the bars."""
        if self._on_plan is None:
            return
        with self._lock:
            if self._bars:
                from tqdm import tqdm  # bars exist: tqdm is loaded

                with tqdm.external_write_mode():
                    self._on_plan(plan)
            else:
                self._on_plan(plan)
            self.plan_shown = True
            self.shown_plan = plan.as_dict() if hasattr(plan, "as_dict") else None

    def close(self) -> None:
        """Close the bars and stop the ticker."""
        self._closed.set()
        with self._lock:
            if self._tty:
                self._decorate()
            for phase in _PHASES:
                bar = self._bars.pop(phase, None)
                if bar is not None:
                    bar.close()

    # -- what is shown ---------------------------------------------------------

    def rate(self) -> float | None:
        """Jobs leaving the queue per second, from the first to the last, or None before two."""
        sent = self.counts["sent"]
        if self._first_sent is None or self._last_sent is None or sent < 2 or self._last_sent <= self._first_sent:
            return None
        return (sent - 1) / (self._last_sent - self._first_sent)

    def eta(self) -> float | None:
        """Seconds until every job is answered, or None while the totals are not known (or no rate yet)."""
        sent_total, captioned_total = self.totals["sent"], self.totals["captioned"]
        if sent_total is None or captioned_total is None:
            return None
        if self.counts["captioned"] >= captioned_total:
            return 0.0
        median = self.latency.quantile(0.5) if self.latency is not None else None
        median = median or 0.0
        left = sent_total - self.counts["sent"]
        if left > 0:
            rate = self.rate()
            return None if rate is None else left / rate + median
        since = self._clock() - self._last_sent if self._last_sent is not None else 0.0
        return max(0.0, median - since)

    def line(self) -> str:
        """Every phase, its total once final, the rate and the ETA, as one line."""
        parts = []
        for phase in _PHASES:
            n, total = self.counts[phase], self.totals[phase]
            text = f"{phase} {n}"
            if total is not None:
                text += f"/{total} ({_percent(n, total)}%)"
            elif phase == "found":
                text += " so far"
            aside = self._aside(phase)
            parts.append(text + (f" ({aside})" if aside else ""))
        rate = self.rate()
        tail = f"; {rate:.1f} sent/s" if rate is not None else ""
        return ", ".join(parts) + tail + "; " + self._eta_text()

    def tick(self) -> None:
        """Print a line once ``interval`` has passed since the last (without a terminal); refresh the ETA (with one)."""
        with self._lock:
            if self.totals["found"] is None and self.walk_done is not None and self.walk_done():
                self._set_total("found", self.counts["found"])
            if not self._enabled or self._closed.is_set():
                return
            if self._tty:
                self._decorate()
                return
            now = self._clock()
            if now - self._last >= self._interval:
                self._last = now
                self.stream.write(f"tagger: progress: {self.line()}\n")
                self.stream.flush()

    # -- inside ----------------------------------------------------------------

    def _eta_text(self) -> str:
        eta = self.eta()
        if eta is not None:
            return eta_words(eta)
        if self.totals["sent"] is not None:
            return "no ETA before two jobs are sent"
        if self.totals["found"] is None:
            return "no ETA while walking"
        return "no ETA before every file found is read"

    def _aside(self, phase: str) -> str:
        if phase == "sent" and self.counts["unsent"]:
            return f"{self.counts['unsent']} without an upload"
        if phase == "captioned" and self.counts["uncaptioned"]:
            return f"{self.counts['uncaptioned']} not captioned"
        if phase == "written" and self.counts["unwritten"]:
            return f"{self.counts['unwritten']} could not be written"
        return ""

    def _fix_captioned(self) -> None:
        if self._to_send is not None and self._owed is not None and self.totals["captioned"] is None:
            self._set_total("captioned", self._to_send + self._owed)

    def _set_total(self, phase: str, total: int) -> None:
        """Set a phase's total, once: a total shown is final."""
        if self.totals[phase] is not None:
            return
        self.totals[phase] = total
        bar = self._bars.get(phase)
        if bar is not None:
            bar.total = total
            bar.bar_format = _TOTAL
            self._decorate()  # "walking" goes with the total's coming
            bar.refresh()

    def _bar(self, phase: str) -> tqdm:
        bar = self._bars.get(phase)
        if bar is None:
            from tqdm import tqdm  # here: a run without a terminal (cron) never draws a bar

            total = self.totals[phase]
            bar = self._bars[phase] = tqdm(
                total=total,
                desc=f"{phase:>9}",
                unit="",
                file=self.stream,
                position=_PHASES.index(phase),
                leave=True,
                bar_format=_COUNT if total is None else _TOTAL,
                ncols=None if _width(self.stream) else 100,  # a terminal of no width (a bare pty) would show nothing
            )
        return bar

    def _decorate(self) -> None:
        """Asides and the ETA beside the bars."""
        for phase, bar in self._bars.items():
            words = [self._aside(phase)]
            if phase == "found" and self.totals["found"] is None:
                words.append("walking")
            if phase == "captioned":
                words.append(self._eta_text())
            text = ", ".join(w for w in words if w)
            if text != (bar.postfix or ""):
                bar.set_postfix_str(text, refresh=False)  # drawn with the next update, or the ticker's refresh

    def _start_ticker(self) -> None:
        if self._ticker is not None or self._heartbeat is None or not self._enabled:
            return
        self._ticker = threading.Thread(target=self._tick_on, name="progress", daemon=True)
        self._ticker.start()

    def _tick_on(self) -> None:
        # Long waits (a slow service, the last polls) still get their line, and the ETA counts down.
        assert self._heartbeat is not None
        while not self._closed.wait(self._heartbeat):
            self.tick()
            if self._tty:
                with self._lock:
                    for bar in self._bars.values():
                        bar.refresh()


def _width(stream: TextIO) -> int:
    """The terminal's width in columns, 0 when it has none."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 0


def _percent(n: int, total: int) -> int:
    """Whole percent, rounded down: 100 only when the phase is done."""
    return 100 if total <= 0 else n * 100 // total
