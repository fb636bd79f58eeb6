"""Progress: tqdm bars on a terminal, a plain log line now and then otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["Progress"]

log = logging.getLogger("tagger.pipeline.progress")

_LABELS = {"scanned": "files scanned", "submitted": "submitted", "settled": "settled"}


class Progress:
    """Counts of files scanned, images submitted and jobs settled."""

    def __init__(self, *, enabled: bool = True, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.counts = dict.fromkeys(_LABELS, 0)
        self.totals: dict[str, int | None] = dict.fromkeys(_LABELS)
        self._bars: dict[str, tqdm] = {}
        self._tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._enabled = enabled
        self._interval = interval
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def total(self, what: str, n: int) -> None:
        """Set the expected total of one counter."""
        with self._lock:
            self.totals[what] = n
            if what in self._bars:
                self._bars[what].total = n
                self._bars[what].refresh()

    def grow(self, what: str, n: int = 1) -> None:
        """Raise the expected total of one counter by ``n`` (a streaming run learns it as it goes)."""
        with self._lock:
            total = self.totals[what] = (self.totals[what] or 0) + n
            if what in self._bars:
                self._bars[what].total = total
                self._bars[what].refresh()

    def __call__(self, what: str, n: int = 1) -> None:
        """Count ``n`` more of ``what``."""
        with self._lock:
            self.counts[what] += n
            if self._tty:
                bar = self._bars.get(what)
                if bar is None:
                    from tqdm import tqdm  # here: a run without a terminal (cron) never draws a bar

                    bar = self._bars[what] = tqdm(
                        total=self.totals[what],
                        desc=_LABELS[what],
                        unit="",
                        file=self.stream,
                        position=len(self._bars),
                        leave=True,
                    )
                bar.update(n)
            elif self._enabled and time.monotonic() - self._last >= self._interval:
                self._last = time.monotonic()
                log.info("progress: %s", self.line())

    def line(self) -> str:
        """The counters as one line."""
        parts = []
        for what, label in _LABELS.items():
            total = self.totals[what]
            parts.append(f"{label} {self.counts[what]}" + (f"/{total}" if total is not None else ""))
        return ", ".join(parts)

    def close(self) -> None:
        """Close the bars."""
        with self._lock:
            for bar in self._bars.values():
                bar.close()
            self._bars.clear()
