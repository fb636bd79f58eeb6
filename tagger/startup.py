"""Signals that arrive while the ``tagger`` command starts end it with the documented status and a sentence.

Importing the CLI (click, requests, SQLite) takes a noticeable moment; a
SIGTERM or SIGHUP then would kill the process by its default action (exit
143 or 129, no word). ``guard_signals()`` runs first, before those imports:
until a command installs its own handling (``StopOnSignals`` in a run), a
stop signal ends the command with exit 3 and says so. Only the command
calls it; the library never touches signal handlers.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

__all__ = ["guard_signals"]

# EXIT_STOPPED, without importing tagger.errors' neighbours this early.
_EXIT_STOPPED = 3


def _stop(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    try:
        os.write(2, f"tagger: interrupted ({name}); run the same command again to resume\n".encode())
    except OSError:
        pass  # the terminal went away (SIGHUP): nothing to tell
    raise SystemExit(_EXIT_STOPPED)


def guard_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP end the command with exit 3 and a sentence (an ignored one stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _stop)
