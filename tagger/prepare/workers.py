"""A pool of worker processes, one call at a time each, that kills and replaces a worker which overruns.

``concurrent.futures.ProcessPoolExecutor`` cannot stop one stuck task without
breaking the whole pool, so each worker here is a process on its own pipe.

Workers ignore SIGINT and SIGTERM: Ctrl-C in a terminal, ``systemctl stop``
and ``docker stop`` signal the whole process group, and it is the parent
that decides how to stop (``cancel()``), not each worker dying on its own
with a file half prepared.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.util
import queue
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["CallTimeout", "WorkerDied", "Cancelled", "AskFailed", "KillablePool"]

# A worker still importing after this long is broken, not slow.
_STARTUP_TIMEOUT = 120.0


class CallTimeout(Exception):
    """The call overran its time limit; its worker was killed and replaced."""


class WorkerDied(Exception):
    """The worker process exited during the call (crash or out of memory); it was replaced."""


class Cancelled(Exception):
    """The call was cut off because the pool was cancelled or closed (the run is stopping): not the item's fault."""


class AskFailed(Exception):
    """The caller's ``answer`` to a worker's question raised (``__cause__``); the worker was replaced."""


# A worker killed by one of these was stopped from outside (the user, the service manager), not crashed.
_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)})
# What workers ignore; blocked while one starts (POSIX), so a signal arriving then waits until it is ignored.
_IGNORED = (signal.SIGINT, signal.SIGTERM)
_MASKABLE = hasattr(signal, "pthread_sigmask")


def _serve(conn: Connection, func: Callable[..., Any], extra: tuple[Any, ...], asks: bool = False) -> None:
    """Worker loop: answer each item with ("ok", result) or ("err", exception).

    With ``asks``, ``func`` gets one more argument, ``ask(question)``: it
    sends ("ask", question) to the caller and returns the caller's reply.
    """

    def ask(question: Any) -> Any:
        conn.send(("ask", question))
        return conn.recv()

    for sig in _IGNORED:
        signal.signal(sig, signal.SIG_IGN)
    if _MASKABLE:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _IGNORED)  # what arrived while starting is dropped now
    try:
        conn.send(("ready", None))
        while True:
            try:
                item = conn.recv()
            except EOFError:
                return
            if item is None:
                return
            try:
                reply: tuple[str, Any] = ("ok", func(item, *extra, ask) if asks else func(item, *extra))
            except Exception as exc:
                reply = ("err", exc)
            try:
                conn.send(reply)
            except OSError:
                return  # the parent is gone (it quit at once on a second signal): nothing to answer
            except Exception as exc:  # an unpicklable result or exception still owes the caller an answer
                conn.send(("err", RuntimeError(f"{type(exc).__name__}: {exc}")))
    except OSError:
        return  # the pipe closed under us: the parent exited or cancelled this call


class _Worker:
    def __init__(self, ctx: Any, func: Callable[..., Any], extra: tuple[Any, ...], asks: bool) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, func, extra, asks), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self._closing = threading.Lock()
        self._closed = False

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
        with self._closing:
            # Once only: a second close of the descriptor could close another file that reused its number.
            if not self._closed:
                self._closed = True
                self.conn.close()

    def stopped_by_signal(self) -> bool:
        """Whether the process ended on a stop signal (sent from outside), rather than crashing."""
        self.process.join(1)
        code = self.process.exitcode
        return code is not None and code < 0 and -code in _STOP_SIGNALS

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(2)
        self.kill()


def _kill_all(workers: set[_Worker]) -> None:
    # At exit, before multiprocessing's own hook, which would SIGTERM (ignored) and then join for ever.
    for worker in list(workers):
        if worker.process.is_alive():
            worker.process.kill()


class KillablePool:
    """Run ``func(item, *extra)`` in one of ``processes`` workers, each call under a time limit.

    With ``asks``, the call is ``func(item, *extra, ask)`` and may ask its
    caller questions (see ``call``'s ``answer``).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        extra: tuple[Any, ...],
        processes: int,
        *,
        asks: bool = False,
        preload: tuple[str, ...] = (),
    ) -> None:
        # forkserver: forking a process that runs threads (the pipeline does) can deadlock.
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if preload and self._ctx.get_start_method() == "forkserver":
            # The server imports them once, before it forks the first worker: each worker starts with them
            # loaded instead of importing them itself (on two cores, N workers importing at once is slow).
            # Only the first pool's list counts: the server is started once per process.
            self._ctx.set_forkserver_preload(["__main__", *preload])
        self._func, self._extra, self._asks = func, extra, asks
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._busy: set[_Worker] = set()
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        self._closed = False
        self._cancelled = threading.Event()
        atexit.register(_kill_all, self._workers)
        for _ in range(processes):
            self._idle.put(self._spawn())

    def _spawn(self) -> _Worker:
        # The new process inherits this thread's signal mask (and so does the forkserver, when this call starts it,
        # and every worker it forks): a Ctrl-C during start-up stays pending until _serve ignores it. The resource
        # tracker is started first: starting it unblocks these signals in the calling thread.
        previous = None
        if _MASKABLE:
            resource_tracker.ensure_running()
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, _IGNORED)
        try:
            worker = _Worker(self._ctx, self._func, self._extra, self._asks)
        finally:
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
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

    def call(self, item: Any, timeout: float, answer: Callable[[Any], Any] | None = None) -> Any:
        """The result of one call; its exception re-raised; CallTimeout or WorkerDied when the worker failed.

        ``answer(question)`` replies to the worker's questions, in this thread;
        the time it takes does not count against ``timeout``. When it raises,
        the worker (left waiting) is replaced and ``AskFailed`` is raised from it.

        Raises ``Cancelled`` when ``cancel()`` or ``close()`` cut the call off,
        or the worker was stopped by SIGINT/SIGTERM from outside.
        """
        if self._closed or self._cancelled.is_set():
            raise Cancelled("the pool is stopping")
        worker = self._idle.get()
        if worker is None:  # cancel()'s wake-up for callers waiting on a worker
            self._idle.put(None)
            raise Cancelled("the pool is stopping")
        with self._lock:
            self._busy.add(worker)
        try:
            if self._cancelled.is_set():
                raise Cancelled("the pool is stopping")
            worker.wait_ready()
            worker.conn.send(item)
            deadline = time.monotonic() + timeout
            while True:
                if not worker.conn.poll(max(0.0, deadline - time.monotonic())):
                    if self._cancelled.is_set():
                        raise Cancelled("the pool is stopping")
                    self._replace(worker)
                    raise CallTimeout(timeout)
                status, value = worker.conn.recv()
                if status != "ask":
                    break
                started = time.monotonic()
                try:
                    reply = answer(value) if answer is not None else None
                except BaseException as exc:
                    self._replace(worker)
                    raise AskFailed() from exc
                worker.conn.send(reply)
                deadline += time.monotonic() - started
        except (EOFError, OSError, WorkerDied) as exc:
            if self._cancelled.is_set() or worker.stopped_by_signal():
                self._replace(worker)
                raise Cancelled("the worker was stopped") from exc
            self._replace(worker)
            raise WorkerDied(str(exc)) from exc
        finally:
            with self._lock:
                self._busy.discard(worker)
        self._idle.put(worker)
        if status == "err":
            raise value
        return value

    def cancel(self) -> None:
        """Cut off every call in progress at once (they raise ``Cancelled``); later calls are refused."""
        with self._lock:
            self._cancelled.set()
            self._closed = True  # a killed worker is not replaced
            busy = list(self._busy)
        self._idle.put(None)
        for worker in busy:
            if worker.process.is_alive():
                worker.process.kill()  # its caller wakes on the closed pipe

    def close(self) -> None:
        """Stop every worker; calls still running are cut off (they raise ``Cancelled``).

        A busy worker's pipe is left to its caller, which ``cancel()`` has woken
        (its process killed) and which closes it: closing a pipe another thread
        is reading could land on a file that reused its number.
        """
        self.cancel()
        with self._lock:
            workers = [worker for worker in self._workers if worker not in self._busy]
            self._workers.difference_update(workers)
        for worker in workers:
            worker.stop()
