"""Benchmark dispatch throughput and politeness against the emulator on loopback.

    python bench/bench_throughput.py              # N=1000; 6-12 s cases scaled by 10 (~3 min)
    python bench/bench_throughput.py --quick      # N=200, baseline on 4 images (~1 min)
    python bench/bench_throughput.py --scale 1    # the 6-12 s cases in real time (~15 min)

Cases (max_in_flight 32, sidecars off so the figures are about dispatch):
  A. latency fixed 1 s (never scaled: at 0.1 s the 2-core box would measure JPEG
     preparation, not dispatch): wall time / (N x 1 s / 32).
  B. latency 6-12 s divided by --scale, with first_poll_delay, poll_interval and
     max_poll_interval divided by the same factor: wall / ideal, polls per
     completed image, median detection delay (first poll answering "completed"
     minus the moment the job completed, per token), in units of poll_interval.
  C. as B with 10 % injected 5xx and 3 % 429: slowdown against B, duplicate
     submissions and requests inside a Retry-After window. The emulator sends
     Retry-After in whole seconds, so pauses do not shrink with --scale: at
     --scale 10 the slowdown overstates what a real-time run sees.
  Baseline: the original client's pattern (submit the file, api.wait(), next),
  with wait()'s sleeps divided by the same scale, on a subset of the images;
  its time per image is extrapolated to N.

The emulator runs in a child process (one process tree) so its JPEG analysis
does not share the pipeline's interpreter lock. The dispatcher is the real one,
subclassed only to time its run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from helpers import make_photo
from PIL import Image, ImageDraw

import tagger.pipeline.runner
from tagger import cloudsight as cs
from tagger.config import Config
from tagger.emulator import Emulator, Faults
from tagger.pipeline.dispatch import Dispatcher
from tagger.pipeline.runner import make_api, run

SIZE = (1600, 1200)
BASES = 4
IN_FLIGHT = 32


# -- images -------------------------------------------------------------------


def _variant(args: tuple[str, str, int]) -> None:
    base, out, i = args
    rnd = random.Random(i)
    with Image.open(base) as im:
        im.load()
        draw = ImageDraw.Draw(im)
        # A few distinct blocks per image: the pixels (so the upload) differ.
        for _ in range(3):
            x, y = rnd.randrange(SIZE[0] - 80), rnd.randrange(SIZE[1] - 80)
            draw.rectangle((x, y, x + 80, y + 80), fill=(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)))
        im.save(out, "JPEG", quality=88)


def make_images(folder: Path, n: int) -> list[Path]:
    """n distinct photo-like 1600x1200 JPEGs: a few bases with per-image changes."""
    bases = [make_photo(folder / "_bases" / f"base{b}.jpg", seed=b, size=SIZE) for b in range(BASES)]
    outs = [folder / "photos" / f"IMG_{i:05d}.JPG" for i in range(n)]
    outs[0].parent.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_variant, [(str(bases[i % BASES]), str(o), i) for i, o in enumerate(outs)], chunksize=16))
    return outs


# -- the emulator in a child process --------------------------------------------


def _serve(conn, latency: tuple[float, float], faults: Faults, seed: int) -> None:
    with Emulator(latency=latency, faults=faults, seed=seed) as emu:
        conn.send((emu.url, emu.key))
        while True:
            command = conn.recv()
            if command == "counters":
                conn.send(emu.counters())
            elif command == "stop":
                conn.send(None)
                return


class ChildEmulator:
    """An Emulator served from a child process; counters() over a pipe."""

    def __init__(self, latency: tuple[float, float], faults: Faults | None = None, seed: int = 7) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, latency, faults or Faults(), seed), daemon=True)

    def __enter__(self) -> ChildEmulator:
        self._proc.start()
        self.url, self.key = self._conn.recv()
        return self

    def counters(self) -> dict:
        self._conn.send("counters")
        return self._conn.recv()

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._proc.join(timeout=10)


# -- the pipeline, instrumented ----------------------------------------------------


class TimedDispatcher(Dispatcher):
    """The real dispatcher, remembering its wall time and its AIMD limit for the report."""

    last: TimedDispatcher | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.wall = 0.0
        TimedDispatcher.last = self

    def run(self):
        started = time.perf_counter()
        try:
            return super().run()
        finally:
            self.wall = time.perf_counter() - started


tagger.pipeline.runner.Dispatcher = TimedDispatcher


def _config(emu: ChildEmulator, ledger: Path, scale: float) -> Config:
    interval = 1.0 / scale
    return Config(
        api_key=emu.key,
        endpoint=emu.url,
        ledger=str(ledger),
        max_in_flight=IN_FLIGHT,
        workers=2,
        first_poll_delay=4.0 * interval,
        poll_interval=interval,
        max_poll_interval=10.0 * interval,
        sidecars=False,
        retry_budget=600.0,
        retry_attempts=20,
    )


def _figures(result, before: dict, after: dict) -> dict:
    """The figures of one run, from the emulator's counters before and after it."""
    dispatcher = TimedDispatcher.last
    completed = {t: at for t, at in after["completed_at"].items() if t not in before["completed_at"]}
    seen = after["first_seen_completed_at"]
    delays = [seen[t] - completed[t] for t in completed if t in seen]
    delta = {
        k: after[k] - before.get(k, 0)
        for k in ("polls", "duplicates", "in_retry_after_window", "rate_limited", "server_errors_injected")
    }
    return {
        "wall": dispatcher.wall,
        "completed": len(completed),
        "settled_ok": result.counts.get("completed", 0),
        "polls_per_image": delta["polls"] / max(1, len(completed)),
        "median_delay": statistics.median(delays) if delays else float("nan"),
        "duplicates": delta["duplicates"],
        "in_retry_after_window": delta["in_retry_after_window"],
        "rate_limited": delta["rate_limited"],
        "server_errors": delta["server_errors_injected"],
        "aimd_decreases": dispatcher.in_flight.decreases,
        "exit": result.exit_code,
    }


def pipeline_case(
    images: list[Path], work: Path, latency: tuple[float, float], scale: float, faults: Faults | None
) -> dict:
    """Run the pipeline over images against a fresh emulator and an empty ledger; the measured figures."""
    with ChildEmulator(latency, faults) as emu:
        config = _config(emu, work / f"ledger-{time.monotonic_ns()}.sqlite", scale)
        with make_api(config) as api:
            result = run(config, [str(images[0].parent)], api=api)
        return _figures(result, {"completed_at": {}}, emu.counters())


def warm_case(images: list[Path], work: Path, latency: tuple[float, float], scale: float) -> dict:
    """A nightly run: the ledger already holds an earlier run's latencies; figures of the second run."""
    halves = [work / "first", work / "second"]
    for folder, part in zip(halves, (images[: len(images) // 2], images[len(images) // 2 :]), strict=True):
        folder.mkdir()
        for path in part:
            os.link(path, folder / path.name)
    with ChildEmulator(latency) as emu:
        config = _config(emu, work / f"ledger-{time.monotonic_ns()}.sqlite", scale)
        with make_api(config) as api:
            run(config, [str(halves[0])], api=api)
        before = emu.counters()
        with make_api(config) as api:
            result = run(config, [str(halves[1])], api=api)
        return _figures(result, before, emu.counters())


def baseline_case(images: list[Path], latency: tuple[float, float], scale: float) -> float:
    """Seconds per image with the original client's pattern: submit, wait(), next."""
    with ChildEmulator(latency) as emu:
        api = cs.API(cs.SimpleAuth(emu.key), base_url=emu.url, sleep=lambda s: time.sleep(s / scale))
        started = time.perf_counter()
        for path in images:
            with open(path, "rb") as f:
                token = api.image_request(f, path.name, {})["token"]
            answer = api.wait(token)
            assert answer["status"] == cs.STATUS_COMPLETED, answer
        per_image = (time.perf_counter() - started) / len(images)
        api.close()
    return per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N=200 and a 4-image baseline")
    parser.add_argument("-n", type=int, default=None, help="images (default 1000, 200 with --quick)")
    parser.add_argument("--scale", type=float, default=10.0, help="divide the 6-12 s latency and poll timings by this")
    parser.add_argument("--baseline", type=int, default=None, help="images in the baseline subset")
    parser.add_argument("--cases", default="ABC", help="cases to run: A, B, W (warm ledger), C; W and C need B")
    args = parser.parse_args()
    n = args.n or (200 if args.quick else 1000)
    subset = args.baseline or (4 if args.quick else 12)
    s = args.scale
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        images = make_images(work, n)
        print(f"{n} images of {SIZE[0]}x{SIZE[1]} generated in {time.perf_counter() - t:.1f} s")

        if "A" not in args.cases:
            a = None
        else:
            a = pipeline_case(images, work, (1.0, 1.0), 1.0, None)
        if a is not None:
            ideal_a = n * 1.0 / IN_FLIGHT
            base_a = baseline_case(images[:subset], (1.0, 1.0), 1.0)
            print(
                f"\nA. latency 1 s, unscaled: wall {a['wall']:.1f} s, ideal {ideal_a:.1f} s -> {a['wall'] / ideal_a:.2f}x ideal"
            )
            print(
                f"   baseline (submit, wait(), next) on {subset} images: {base_a:.2f} s/image, "
                f"extrapolated to {n}: {base_a * n:.0f} s -> speed-up {base_a * n / a['wall']:.1f}x"
            )
            print(f"   polls/image {a['polls_per_image']:.2f}, completed {a['completed']}/{n}, exit {a['exit']}")
        if "B" not in args.cases:
            return

        lat = (6.0 / s, 12.0 / s)
        b = pipeline_case(images, work, lat, s, None)
        ideal_b = n * (lat[0] + lat[1]) / 2 / IN_FLIGHT
        base_b = baseline_case(images[:subset], lat, s)
        print(
            f"\nB. latency 6-12 s / {s:g}: wall {b['wall']:.1f} s, ideal {ideal_b:.1f} s -> {b['wall'] / ideal_b:.2f}x ideal"
        )
        print(
            f"   baseline on {subset} images: {base_b:.3f} s/image, extrapolated {base_b * n:.0f} s "
            f"-> speed-up {base_b * n / b['wall']:.1f}x"
        )
        print(f"   polls per completed image {b['polls_per_image']:.2f} (target <= 2)")
        print(
            f"   median detection delay {b['median_delay']:.3f} s = {b['median_delay'] * s:.2f} poll intervals "
            f"(target <= 1), completed {b['completed']}/{n}"
        )

        if "W" in args.cases:
            w = warm_case(images, work, lat, s)
            print(
                f"\nW. as B, a second run whose ledger holds the first half's latencies ({n // 2} + {n - n // 2} images):"
            )
            print(
                f"   polls per completed image {w['polls_per_image']:.2f} (target <= 2), median detection delay "
                f"{w['median_delay']:.3f} s = {w['median_delay'] * s:.2f} poll intervals, completed {w['completed']}"
            )
        if "C" not in args.cases:
            return
        faults = Faults(server_error_rate=0.10, rate_limit_rate=0.03, retry_after=1.0)
        c = pipeline_case(images, work, lat, s, faults)
        print(
            f"\nC. as B with 10% 5xx and 3% 429 (Retry-After 1 s and retry backoff unscaled): wall {c['wall']:.1f} s "
            f"-> slowdown {c['wall'] / b['wall']:.2f}x against B"
        )
        print(f"   injected: {c['server_errors']} 5xx, {c['rate_limited']} 429 (AIMD decreases {c['aimd_decreases']})")
        print(
            f"   duplicates {c['duplicates']}, requests inside a Retry-After window {c['in_retry_after_window']}, "
            f"completed {c['completed']}/{n}, polls/image {c['polls_per_image']:.2f}"
        )


if __name__ == "__main__":
    main()
