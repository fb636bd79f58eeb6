"""Benchmark start-up: ``tagger --help`` and ``tagger status`` against ``python -c pass``; one new photo to its POST.

    python bench/bench_startup.py              # 5 rounds of each
    python bench/bench_startup.py --repeat 9 --size 4000x3000

Each measurement is a whole ``python -m tagger`` process, as a shell or cron
starts it (interpreter start-up and imports included):

  1. ``python -c pass``, ``tagger --help`` and ``tagger status`` (on the
     ledger the runs below leave): wall and CPU time (user + system), median
     and best of ``--repeat`` rounds, interleaved so that load from other work
     on the machine falls on each alike, and their ratio to ``python -c pass``.
  2. A run over a folder holding one new photo (a 12 MP JPEG by default),
     against an emulator served from this process (latency 0.05-0.1 s; the
     ``tagger`` process talks to it over a real socket): seconds from
     starting the process to the emulator receiving the photo's POST, median
     and best, against the 1 s aim. A new folder and photo each round, one
     ledger (the first, untimed round makes it): the nightly run that finds
     one new photo.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers import make_photo

from tagger.emulator import Emulator

#: The aim for a run over one new photo: its POST leaves within this many seconds of the process starting.
FIRST_POST_AIM = 1.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env() -> dict[str, str]:
    # No user's config file, key or endpoint: the command line says everything.
    return {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}


def _timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU time of one child process, which must succeed."""
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start, _children_cpu() - cpu


def first_post(work: Path, emu: Emulator, round_no: int, size: tuple[int, int], config: Path) -> tuple[float, float]:
    """One run over a folder of one new photo: (seconds to the emulator's first POST, seconds to the exit)."""
    folder = work / f"new-{round_no}"
    make_photo(folder / "IMG_0001.JPG", seed=1000 + round_no, size=size)
    ledger = work / "ledger.sqlite"
    before = emu.counters()["submissions"]
    argv = [sys.executable, "-m", "tagger", "run", str(folder), "--config", str(config)]
    argv += ["--endpoint", emu.url, "--api-key", emu.key, "--ledger", str(ledger), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    posted = None
    while proc.poll() is None:
        if posted is None and emu.counters()["submissions"] > before:
            posted = time.perf_counter() - start
        time.sleep(0.002)
    out, err = proc.communicate()
    ended = time.perf_counter() - start
    if posted is None and emu.counters()["submissions"] > before:
        posted = ended  # the whole run took less than one look
    if proc.returncode != 0 or not out.startswith("new 1, submitted 1,") or posted is None:
        raise SystemExit(f"not a first run of one photo (exit {proc.returncode}): {out!r} {err!r}")
    return posted, ended


def _row(label: str, walls: list[float], cpus: list[float], base: tuple[float, float] | None) -> str:
    wmed, cmed = statistics.median(walls), statistics.median(cpus)
    text = (
        f"  {label:<16} wall median {wmed * 1000:6.0f} ms best {min(walls) * 1000:6.0f} ms"
        f" | CPU median {cmed * 1000:6.0f} ms best {min(cpus) * 1000:6.0f} ms"
    )
    if base is not None:
        text += f" | {wmed / base[0]:4.1f}x / {cmed / base[1]:4.1f}x python -c pass (wall / CPU medians)"
    return text


def main(argv: list[str] | None = None) -> int:
    """Measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds of each measurement (default 5)")
    parser.add_argument("--size", default="4000x3000", help="the new photo's pixels, WxH (default 4000x3000)")
    parser.add_argument("--dir", help="work in this folder (kept) instead of a temporary one (removed)")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    assert len(size) == 2, "--size WxH"
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tagger-startup-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        config = work / "fast-polls.toml"  # the first answer is awaited briefly: the rounds end quickly
        config.write_text("[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n")
        posts, runs = [], []
        with Emulator(latency=(0.05, 0.1), seed=7) as emu:
            first_post(work, emu, 0, size, config)  # warms the page cache and the bytecode
            for i in range(1, args.repeat + 1):
                posted, ended = first_post(work, emu, i, size, config)
                posts.append(posted)
                runs.append(ended)
        ledger = work / "ledger.sqlite"
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "tagger --help": [sys.executable, "-m", "tagger", "--help"],
            "tagger status": [sys.executable, "-m", "tagger", "status", "--ledger", str(ledger)],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for cmd in commands.values():
            _timed(cmd, work)  # warm
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                times[name].append(_timed(cmd, work))
        print(f"start-up | {args.repeat} rounds | {sys.executable}")
        base = None
        for name in commands:
            walls, cpus = [w for w, _ in times[name]], [c for _, c in times[name]]
            print(_row(name, walls, cpus, base), flush=True)
            if base is None:
                base = (statistics.median(walls), statistics.median(cpus))
        med = statistics.median(posts)
        print(
            f"one new {size[0]}x{size[1]} photo: its POST {med:.2f} s after the start (median; best {min(posts):.2f} s;"
            f" aim {FIRST_POST_AIM:g} s: {'met' if med <= FIRST_POST_AIM else 'NOT met'});"
            f" whole run {statistics.median(runs):.2f} s (answer awaited, sidecar written)"
        )
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
