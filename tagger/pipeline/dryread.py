"""The dry run reads files as the real run does: in killable worker processes, under ``prepare_time_limit``.

Hashing a crafted file can take for ever; the real run hashes new files (``read_once``) in
worker processes that are killed when they overrun, and so does the dry run
through ``BoundedHasher``. The processes start on the first file to hash (a
dry run over an unchanged archive starts none), and a stop (a signal)
cancels the read in progress at once.
"""

from __future__ import annotations

import os
import threading

from tagger.prepare.normalise import Cancelled, PrepareError, PrepareOptions, Preparer

__all__ = ["BoundedHasher"]


class BoundedHasher:
    """A callable ``path -> (digest, None) | (None, reason)`` for ``plan()``, and the ``Preparer`` it started."""

    def __init__(self, options: PrepareOptions, processes: int, stop: threading.Event | None) -> None:
        self._options = options
        self._processes = processes
        self._stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._preparer: Preparer | None = None
        self._closed = threading.Event()
        threading.Thread(target=self._watch, name="dry-run-stop", daemon=True).start()

    def _watch(self) -> None:
        while not self._closed.is_set():
            if self._stop.wait(0.2):
                with self._lock:
                    if self._preparer is not None:
                        self._preparer.cancel()  # the read in progress ends now, not when the file is done
                return

    @property
    def preparer(self) -> Preparer:
        """The worker processes (started now, if no file needed them yet)."""
        with self._lock:
            if self._preparer is None:
                self._preparer = Preparer(self._options, processes=self._processes)
                if self._stop.is_set():
                    self._preparer.cancel()
            return self._preparer

    def __call__(self, path: bytes) -> tuple[str | None, str | None]:
        if self._stop.is_set():
            raise Cancelled()
        try:
            return self.preparer.hash(os.fsdecode(path)), None
        except PrepareError as exc:
            if self._stop.is_set():
                raise Cancelled() from None  # cut short by the stop: not the file's fault
            return None, exc.reason

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        self._closed.set()
        with self._lock:
            if self._preparer is not None:
                self._preparer.close()
                self._preparer = None
