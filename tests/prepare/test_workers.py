"""The preparing processes: deaf to the stop signals, cut off by the parent's cancel(), a crash still a crash."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from corpus import hang
from helpers import make_photo

from tagger.prepare.normalise import Cancelled, PrepareError, PrepareOptions, Preparer
from tagger.prepare.workers import KillablePool, WorkerDied


def _echo(item: object) -> object:
    return item


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _pids() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


@pytest.mark.slow
def test_workers_ignore_sigint_and_sigterm_even_while_starting():
    pool = KillablePool(_echo, (), 2)
    try:
        starting = _pids()
        assert len(starting) == 2
        for pid in starting:  # before they are ready: the signals wait, blocked, until the worker ignores them
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
        assert [pool.call(i, 30) for i in range(2)] == [0, 1]  # both have answered: both are ready
        assert _pids() == starting
        pids = _pids()
        assert len(pids) >= 2
        for pid in pids:
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
        time.sleep(0.3)
        assert [pool.call(i, 30) for i in range(4)] == [0, 1, 2, 3]
        assert _pids() == pids  # the same workers, none died and was replaced
    finally:
        pool.close()
    assert not _pids()


@pytest.mark.slow
def test_cancel_cuts_calls_off_at_once_and_refuses_new_ones(tmp_path: Path):
    stuck = make_photo(tmp_path / "hang.jpg", seed=1, size=(64, 48))
    outcome: dict[str, BaseException] = {}
    with _Hanging(PrepareOptions(time_limit=600.0), processes=1) as preparer:

        def call() -> None:
            try:
                preparer.prepare(str(stuck))
            except BaseException as exc:
                outcome["exc"] = exc

        waiting = threading.Thread(target=call)  # waits for the one busy worker: woken too
        busy = threading.Thread(target=call)
        busy.start()
        time.sleep(1.0)
        waiting.start()
        time.sleep(0.2)
        started = time.monotonic()
        preparer.cancel()
        busy.join(5)
        waiting.join(5)
        assert not busy.is_alive() and not waiting.is_alive()
        assert time.monotonic() - started < 3
        # Neither says anything about the file: it is no PrepareError, so the file is not recorded as failed.
        assert isinstance(outcome["exc"], Cancelled) and not isinstance(outcome["exc"], PrepareError)
        with pytest.raises(Cancelled):
            preparer.prepare(str(stuck))


@pytest.mark.slow
def test_a_worker_killed_outright_is_still_a_crash(tmp_path: Path):
    stuck = make_photo(tmp_path / "hang.jpg", seed=2, size=(64, 48))
    with _Hanging(PrepareOptions(time_limit=600.0), processes=1) as preparer:
        timer = threading.Timer(1.0, lambda: [os.kill(pid, signal.SIGKILL) for pid in _pids()])
        timer.start()
        with pytest.raises(PrepareError, match="crashed"):
            preparer.prepare(str(stuck))
        timer.join()
    pool = KillablePool(_echo, (), 1)
    try:
        pool.call(1, 30)
        for pid in _pids():
            os.kill(pid, signal.SIGSEGV)
        time.sleep(0.3)
        with pytest.raises(WorkerDied):
            pool.call(2, 30)
    finally:
        pool.close()


class _Hanging(Preparer):
    _task = staticmethod(hang)


def test_close_leaves_a_busy_workers_pipe_to_its_caller():
    # Ctrl-C while a worker prepares: the caller's thread, woken by the killed process, closes the pipe; close()
    # closing it too raced it (EBADF turned a clean stop into exit 2) and could close a file that reused its number.
    pool = KillablePool(_sleep, (), 1)
    outcome: list[str] = []

    def caller() -> None:
        try:
            pool.call(30.0, 60)
            outcome.append("returned")
        except Cancelled:
            outcome.append("cancelled")

    thread = threading.Thread(target=caller, name="caller")
    thread.start()
    deadline = time.monotonic() + 30
    while not pool._busy:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker = next(iter(pool._busy))
    closers: list[str] = []
    real_close = worker.conn.close

    def close() -> None:
        closers.append(threading.current_thread().name)
        real_close()

    worker.conn.close = close
    pool.close()
    thread.join(10)
    assert outcome == ["cancelled"]
    assert closers == ["caller"]
    assert not _pids()
