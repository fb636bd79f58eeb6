"""A pool of worker processes, one call at a time each, that kills and replaces a worker which overruns.

``concurrent.futures.ProcessPoolExecutor`` cannot stop one stuck task without
breaking the whole pool, so each worker here is a process on its own pipe.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["CallTimeout", "WorkerDied", "KillablePool"]

# A worker still importing after this long is broken, not slow.
_STARTUP_TIMEOUT = 120.0


class CallTimeout(Exception):
    """The call overran its time limit; its worker was killed and replaced."""


class WorkerDied(Exception):
    """The worker process exited during the call (crash or out of memory); it was replaced."""


def _serve(conn: Connection, func: Callable[..., Any], extra: tuple[Any, ...]) -> None:
    """Worker loop: answer each item with ("ok", result) or ("err", exception)."""
    conn.send(("ready", None))
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        try:
            reply: tuple[str, Any] = ("ok", func(item, *extra))
        except Exception as exc:
            reply = ("err", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result or exception still owes the caller an answer
            conn.send(("err", RuntimeError(f"{type(exc).__name__}: {exc}")))


class _Worker:
    def __init__(self, ctx: Any, func: Callable[..., Any], extra: tuple[Any, ...]) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, func, extra), daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def wait_ready(self) -> None:
        if not self.ready:
            if not self.conn.poll(_STARTUP_TIMEOUT):
                raise WorkerDied("worker did not start")
            self.conn.recv()
            self.ready = True

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(2)
        self.kill()


class KillablePool:
    """Run ``func(item, *extra)`` in one of ``processes`` workers, each call under a time limit."""

    def __init__(self, func: Callable[..., Any], extra: tuple[Any, ...], processes: int) -> None:
        # forkserver: forking a process that runs threads (the pipeline does) can deadlock.
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        self._func, self._extra = func, extra
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._closed = False
        for _ in range(processes):
            self._idle.put(self._spawn())

    def _spawn(self) -> _Worker:
        worker = _Worker(self._ctx, self._func, self._extra)
        with self._lock:
            self._workers.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)
            closed = self._closed
        if not closed:
            self._idle.put(self._spawn())

    def call(self, item: Any, timeout: float) -> Any:
        """The result of one call; its exception re-raised; CallTimeout or WorkerDied when the worker failed."""
        if self._closed:
            raise RuntimeError("pool is closed")
        worker = self._idle.get()
        try:
            worker.wait_ready()
            worker.conn.send(item)
            if not worker.conn.poll(timeout):
                self._replace(worker)
                raise CallTimeout(timeout)
            status, value = worker.conn.recv()
        except (EOFError, OSError, WorkerDied) as exc:
            self._replace(worker)
            raise WorkerDied(str(exc)) from exc
        self._idle.put(worker)
        if status == "err":
            raise value
        return value

    def close(self) -> None:
        """Stop every worker; calls still running are cut off."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            self._workers.clear()
        for worker in workers:
            worker.stop()
