"""Benchmark a first run over new photos: file opens per new image, seconds to the first submission.

    python bench/bench_first_run.py              # 1,000 new 12 MP photos (~4 GB in a temporary folder)
    python bench/bench_first_run.py --quick      # 100 photos
    python bench/bench_first_run.py -n 300 --dir /var/tmp/first

Builds N distinct 12 MP (4000x3000) JPEGs: one photo-like base, the others
the same file with three quantisation-table values changed, so each decodes,
hashes differently and costs a full read. Against an emulator in a child
process (latency 0.05-0.1 s: the figures are about reading, not waiting):

  1. ``--dry-run`` over the tree (after one untimed dry run warms the page
     cache): its wall time, the baseline.
  2. A real first run (empty ledger, default settings): seconds from calling
     ``run()`` to the first POST of an image, as a ratio of (1). A pipeline
     that streams starts within seconds whatever N is; one that hashes the
     whole tree before sending anything shows a ratio near 1.0.
  3. The same first run again on a fresh ledger under ``strace -f -e
     trace=open,openat``: successful opens of the photos (sidecars and
     temporary files not counted), per new image. One read per new file is
     1.0; hashing in the plan and reading again to prepare is 2.0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZE = (4000, 3000)
PER_FOLDER = 250


def _dqt_offset(data: bytes) -> int:
    """Offset of the first quantisation table's 64 values (8-bit precision)."""
    pos = 2
    while pos < len(data) - 4:
        if data[pos] != 0xFF:
            raise ValueError("not a JPEG marker segment")
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xDB:
            if data[pos + 4] >> 4:
                raise ValueError("a 16-bit quantisation table")
            return pos + 5
        pos += 2 + length
    raise ValueError("no quantisation table")


def build_tree(root: Path, n: int) -> list[Path]:
    """N distinct 12 MP JPEGs in folders of PER_FOLDER."""
    from helpers import make_photo

    base = make_photo(root.parent / "_base.jpg", seed=1, size=SIZE).read_bytes()
    table = _dqt_offset(base)
    paths = []
    for i in range(n):
        data = bytearray(base)
        for k in range(3):  # the three highest frequencies: invisible, and the hash differs
            data[table + 61 + k] = 1 + (i // 255**k) % 255
        path = root / f"d{i // PER_FOLDER:03d}" / f"IMG_{i:05d}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def child(ledger: str, root: str, url: str, key: str, dry_run: bool) -> None:
    """One ``run()`` or ``dry_run()`` in this process, timed; prints JSON."""
    from tagger import cloudsight as cs
    from tagger.config import Config
    from tagger.pipeline import dry_run as count_plan
    from tagger.pipeline import make_api, run

    first: list[float] = []
    original = cs.API.image_request

    def stamped(self, *args, **kwargs):
        if not first:
            first.append(time.perf_counter())
        return original(self, *args, **kwargs)

    cs.API.image_request = stamped
    # The photos differ only in invisible quantisation values: reuse_similar would rightly send one of them.
    config = Config(
        ledger=ledger,
        api_key=key,
        endpoint=url,
        first_poll_delay=0.05,
        poll_interval=0.05,
        max_poll_interval=0.2,
        reuse_similar=False,
    )
    with make_api(config) as api:
        start = time.perf_counter()
        result = count_plan(config, [root], api=api) if dry_run else run(config, [root], api=api)
        end = time.perf_counter()
    print(
        json.dumps(
            {
                "seconds": end - start,
                "first_submission": (first[0] - start) if first else None,
                "new": result.plan.new,
                "credits": result.plan.credits,
                "submitted": 0 if dry_run else result.tally.submitted,
                "exit": result.exit_code,
            }
        )
    )


def _run_child(work: Path, root: Path, emu, *, dry_run: bool, strace: Path | None = None) -> dict:
    # A fresh ledger each time; the sidecars an earlier run wrote would be adopted (a lost ledger costs nothing).
    for sidecar in root.rglob("*.xmp"):
        sidecar.unlink()
    ledger = work / f"ledger-{time.monotonic_ns()}.sqlite"
    cmd = [sys.executable, __file__, "--child", str(ledger), str(root), emu.url, emu.key] + (
        ["--dry"] if dry_run else []
    )
    if strace is not None:
        cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(strace)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


_CALL = re.compile(r'^(\d+)\s+open(?:at)?\((?:AT_FDCWD|\d+), "((?:[^"\\]|\\.)*)"')
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. open(?:at)? resumed>")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+)")


def count_opens(trace: Path, root: Path) -> int:
    """Successful opens of photos under ``root`` in an ``strace -f`` log (calls split across lines included)."""
    prefix = str(root) + os.sep
    pending: dict[str, str] = {}  # pid -> path of an open left <unfinished ...>
    n = 0
    with open(trace, encoding="utf-8", errors="replace") as f:
        for line in f:
            call, resumed = _CALL.search(line), _RESUMED.search(line)
            if call:
                pid, path = call.groups()
            elif resumed:
                pid, path = resumed.group(1), pending.pop(resumed.group(1), "")
            else:
                continue
            if line.rstrip().endswith("<unfinished ...>"):
                pending[pid] = path
                continue
            result = _RESULT.search(line)
            if result and int(result.group(1)) >= 0 and path.startswith(prefix) and path.upper().endswith(".JPG"):
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    """Build, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=None, help="new photos (default 1,000; 100 with --quick)")
    parser.add_argument("--quick", action="store_true", help="100 photos")
    parser.add_argument("--dir", help="work in this folder (kept) instead of a temporary one (removed)")
    parser.add_argument("--child", nargs=4, metavar=("LEDGER", "ROOT", "URL", "KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--dry", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child, dry_run=args.dry)
        return 0
    if shutil.which("strace") is None:
        raise SystemExit("this benchmark counts opens with strace: apt-get install strace")
    from bench_throughput import ChildEmulator

    n = args.n or (100 if args.quick else 1000)
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tagger-first-"))
    try:
        root = work / "photos"
        if root.exists():
            shutil.rmtree(root)
        start = time.perf_counter()
        photos = build_tree(root, n)
        size = sum(p.stat().st_size for p in photos)
        print(
            f"{n:,} photos of {SIZE[0]}x{SIZE[1]} ({size / 1e9:.2f} GB) written in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        with ChildEmulator((0.05, 0.1)) as emu:
            _run_child(work, root, emu, dry_run=True)  # warms the page cache
            dry = _run_child(work, root, emu, dry_run=True)
            real = _run_child(work, root, emu, dry_run=False)
            trace = work / "openat.trace"
            traced = _run_child(work, root, emu, dry_run=False, strace=trace)
        if not (dry["credits"] == real["submitted"] == traced["submitted"] == n):
            raise SystemExit(f"not a first run of {n} new photos: dry {dry}, real {real}, traced {traced}")
        opens = count_opens(trace, root)
        ratio = real["first_submission"] / dry["seconds"]
        print(
            f"--dry-run {dry['seconds']:.2f} s; first run: first submission after {real['first_submission']:.2f} s "
            f"-> {ratio:.2f}x the dry run (whole run {real['seconds']:.1f} s)"
        )
        print(f"file opens per new image on a first run: {opens / n:.2f} ({opens:,} opens of {n:,} photos)")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
