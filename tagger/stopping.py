"""Turn SIGINT, SIGTERM and SIGHUP into a graceful stop; a second one quits at once.

Ctrl-C in a terminal, ``systemctl stop``, ``timeout`` and ``docker stop``
signal the whole process group. The first signal only sets an event that the
run watches (no new uploads, answers of those in flight awaited a few
seconds, nothing failed); a second one exits at once with status 3 (also
while the stopped run winds down, until the process ends), which is
as safe as a crash: every ledger change is a transaction and the next run's
start-up sweep settles what was cut off.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, NoReturn

from tagger.errors import EXIT_STOPPED

__all__ = ["StopOnSignals", "signalled", "exit_after_signal"]

_signalled = threading.Event()  # a stop signal came: the process ends without the interpreter's finalization

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _say(text: str) -> None:
    # os.write, not print: a handler may run while the main thread is inside a write to stderr.
    try:
        os.write(2, text.encode("utf-8", "replace"))
    except OSError:
        pass  # the terminal went away (SIGHUP): nothing to tell


class StopOnSignals:
    """A context manager: while inside, the stop signals set ``event`` (the first) or exit with status 3 (the next)."""

    def __init__(self, grace: float) -> None:
        self.event = threading.Event()
        self.signal_name: str | None = None
        self._grace = grace
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers; the run then stops on KeyboardInterrupt as before
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if previous is signal.SIG_IGN:
                continue  # started under nohup, or in the background by a shell: keep ignoring it
            self._previous[sig] = previous
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.event.is_set():
            # A stop is under way: the handlers stay, so a second signal during the wind-down (the summary,
            # the interpreter's exit) still quits with status 3; restored, SIGINT would end the process by
            # the signal (130 in a shell) while exiting, and SIGTERM at once.
            self._previous.clear()
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.event.is_set():
            _say(f"\ntagger: interrupted again ({name}): quitting at once; run the same command again to resume\n")
            os._exit(EXIT_STOPPED)
        self.signal_name = name
        _signalled.set()
        self.event.set()
        again = "press Ctrl-C again" if signum == signal.SIGINT else f"send {name} again"
        _say(
            f"\ntagger: interrupted ({name}): no new uploads; waiting at most {self._grace:g} s for the answers "
            f"of uploads in flight ({again} to quit at once); run the same command again to resume\n"
        )


def signalled() -> bool:
    """Whether a stop signal came while a ``StopOnSignals`` was in force, in this process."""
    return _signalled.is_set()


def exit_after_signal(code: int) -> NoReturn:
    """End a process a signal stopped: output flushed, then exit at once with ``code``.

    Python's finalization resets the signal handlers to their defaults before
    it is done (joining threads, running atexit hooks): a second Ctrl-C then
    would end the process by the signal (130 in a shell) instead of ``code``.
    Everything a run keeps is committed by then, so nothing is lost by
    skipping it (the same holds for the second signal's ``os._exit``).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can reach it
    os._exit(code)
