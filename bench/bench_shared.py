"""Benchmark the shared store: what a claim round trip costs a run, and how many machines one PostgreSQL serves.

    python bench/bench_shared.py            # N=1000, latency 1 s, 32 in flight, 3 rounds (~8 min)
    python bench/bench_shared.py --quick    # N=200

Needs PostgreSQL: a throwaway cluster is started as in the tests (tests/pg.py), or
TAGGER_TEST_PG_URL names a server (a role that may CREATE DATABASE).

A. The same N images, the same emulator (in a child process, latency fixed 1 s, as
   case A of bench_throughput.py), 32 in flight, sidecars off: a run without the
   shared store, then one with it (a fresh database). Reported: the dispatcher's wall
   time of each and the overhead in per cent (target: under 5 %).
B. Claims capacity: P processes on this machine, each doing the store's whole cycle
   per image (claim, sending, token, settled: four round trips, as a run does) as
   fast as it can, for 3 s. Reported: cycles per second in all, per process count.
   A machine at 32 in flight with the service's 6-12 s latency finishes about
   32 / 9 = 3.6 images a second: one PostgreSQL serves (cycles per second) / 3.6
   machines before claims become the bottleneck (on paper: the test box's two cores
   run PostgreSQL, the clients and the emulator at once, so a real server does better).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import bench_throughput as bt
from pg import PgServer

from tagger.pipeline.runner import make_api, run
from tagger.shared.base import Answer
from tagger.shared.store import PgStore


def run_case(images: list[Path], work: Path, url: str, pool: int = PgStore.pool_size) -> float:
    """The dispatcher's wall time of one run over ``images`` (with the shared store when ``url``, ``pool`` connections)."""
    PgStore.pool_size = pool
    for old in work.glob("ledger-*"):
        old.unlink()
    with bt.ChildEmulator((1.0, 1.0)) as emu:
        config = bt._config(emu, work / f"ledger-{bool(url)}.sqlite", 1.0).replace(
            shared_url=url,
            shared_machine="b",
            reuse_similar=False,  # every image is sent: the claims are measured
        )
        with make_api(config) as api:
            result = run(config, [str(images[0].parent)], api=api)
        assert result.exit_code == 0, result.stopped
        assert result.tally.submitted == len(images), (result.tally.submitted, len(images))
    return bt.TimedDispatcher.last.wall  # type: ignore[union-attr]


def _cycles(args: tuple[str, int, float]) -> int:
    url, worker, seconds = args
    from tagger.shared.open import connect
    from tagger.shared.store import PgStore

    store = PgStore(url, connect(url), owner=f"p{worker}", machine=f"p{worker}", endpoint="e", locale="en-US", scheme=2)
    answer = Answer("completed", "completed", "a caption", None, None, ("x",))
    n, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        digest = f"{worker}-{n}-{os.getpid()}"
        assert store.claim(digest).kind == "mine"
        store.sending(digest)
        store.token(digest, f"t{n}")
        store.settled([(digest, answer)])
        n += 1
    store.close()
    return n


def capacity(url: str, processes: int, seconds: float = 3.0) -> float:
    """Store cycles per second, all processes together."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        counts = pool.map(_cycles, [(url, i, seconds) for i in range(processes)])
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N=200")
    parser.add_argument("-n", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds of case A; medians reported")
    parser.add_argument("--no-capacity", action="store_true", help="case A only")
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 1000)
    server = PgServer(os.environ.get("TAGGER_TEST_PG_URL") or None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            images = bt.make_images(work, n)
            pool = PgStore.pool_size
            cases = {
                "without the shared store": ("", 0),
                "shared, 1 connection": ("db", 1),
                f"shared, {pool} connections": ("db", pool),
            }
            walls: dict[str, list[float]] = {name: [] for name in cases}
            for round_ in range(args.repeat):
                # Interleaved, the order turned each round: a noisy neighbour weighs on every case alike.
                names = list(cases) if round_ % 2 == 0 else list(reversed(cases))
                for name in names:
                    url, size = cases[name]
                    walls[name].append(run_case(images, work, url and server.new_database(), size or pool))
            base = statistics.median(walls["without the shared store"])
            print(f"A. {n} images, 32 in flight, latency 1 s, median of {args.repeat} interleaved rounds:")
            for name, times in walls.items():
                wall = statistics.median(times)
                shown = " ".join(f"{t:.2f}" for t in times)
                print(f"   {name}: {wall:.2f} s ({shown}): {100 * (wall / base - 1):+.1f} % wall time")
            PgStore.pool_size = pool
            if args.no_capacity:
                return
        from tagger.shared.migrations import apply
        from tagger.shared.open import connect

        url = server.new_database()
        with connect(url) as c:
            apply(c)
        for processes in (1, 2, 4):
            rate = capacity(url, processes)
            print(
                f"B. {processes} process(es): {rate:.0f} claim cycles/s in all "
                f"(4 round trips each): serves ~{rate / 3.6:.0f} machines at 3.6 images/s"
            )
    finally:
        server.close()


if __name__ == "__main__":
    main()
