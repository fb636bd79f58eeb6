"""Benchmark a no-op incremental run: a whole ``tagger run`` against ``find`` on the same warm tree.

    python bench/bench_noop.py              # 100,000 files, then a 1,000,000-row ledger
    python bench/bench_noop.py --quick      # 10,000 files, then 100,000 rows
    python bench/bench_noop.py --files 200000 --rows 2000000 --repeat 9

Builds a tree of tiny, distinct, valid JPEGs (100 folders of 1,000 files by
default) and a ledger holding every one of them as a finished run leaves it
(rows written by ``Ledger.files.upsert``, content hashes equal to
``tagger.prepare.hashing.content_hash``, one completed job each with its
keywords derived, sidecars recorded as written). Then, on the warm tree, it
times ``find DIR -type f -printf '%s %T@\\n'`` and a whole no-op
``tagger.pipeline.runner.run`` (lock, crash sweep, plan, write-back check,
summary; the plan alone is shown too), each in a fresh child process that
also reports its peak RSS (VmHWM). The first no-op after the captioning run
(which marks the folders it finds all done) is shown on its own; then
``--repeat`` runs of each are timed, interleaved (find, run, find, run...)
so that load from other work on the machine falls on both alike, and the
median and best are printed, of wall times and of CPU times (user + system:
steadier than wall time on a machine other work shares), with the ratios of
medians and of bests. The same is done for the whole ``tagger run`` command
as a process (interpreter start-up and imports included). It repeats all of
it after padding the ledger with rows in folders that are not on disk (the
walk stays the same size) to show that neither time nor memory grows with
the ledger.

The whole command's CPU ratio (medians) is checked against ``TARGET``: a
nightly no-op costs what the walk costs. tagger's own modules are timed as
an install has them, compiled to bytecode: with ``PYTHONDONTWRITEBYTECODE``
set, an editable checkout would compile every module at every start, which
no installed tagger does (``--no-compile`` measures that case).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tagger.ledger.store import Ledger
from tagger.prepare.hashing import content_hash

#: The service the ledger's jobs are for: the base URL the timed runs are given (nothing listens there; nothing is sent).
BASE_URL = "http://127.0.0.1:9/v1"
ENDPOINT = BASE_URL  # its normal form (tagger.ledger.keys.normal_endpoint)
#: Rows per write transaction while building the ledger.
BATCH = 50_000
#: The whole ``tagger run`` process at most this many times ``find``'s CPU time (medians).
TARGET = 2.5


def _base_jpeg() -> bytes:
    """An 8x8 JPEG without its APP0 segment, so its content hash is the SHA-256 of the file."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 30, 200)).save(out, "JPEG", quality=50)
    data = out.getvalue()
    assert data[2:4] == b"\xff\xe0", "Pillow wrote no APP0 first"
    app0 = 4 + int.from_bytes(data[4:6], "big")  # marker, then a length that counts itself
    data = data[:2] + data[app0:]
    assert data[2:4] == b"\xff\xdb", "no quantisation table after SOI"
    return data


def _variant(base: bytes, i: int) -> bytes:
    """``base`` with three high-frequency quantisation values set from ``i``: a distinct, decodable JPEG."""
    data = bytearray(base)
    table = 2 + 4 + 1  # SOI, DQT marker and length, precision/id byte
    for k in range(3):
        data[table + 61 + k] = 1 + (i // 255**k) % 255
    return bytes(data)


def build_tree(root: Path, files: int, per_folder: int) -> list[tuple[bytes, bytes, int, int, str]]:
    """Write the tree; returns (dir, name, size, mtime_ns, hash) per file, for the ledger."""
    base = _base_jpeg()
    rows: list[tuple[bytes, bytes, int, int, str]] = []
    for i in range(files):
        folder = root / f"d{i // per_folder:05d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True)
        data = _variant(base, i)
        name = f"IMG_{i:07d}.jpg"
        path = folder / name
        path.write_bytes(data)
        st = path.stat()
        rows.append((os.fsencode(folder), name.encode(), st.st_size, st.st_mtime_ns, hashlib.sha256(data).hexdigest()))
    # The rows must be exactly what the planner would record: check a sample against the real hash.
    for d, n, _, _, digest in rows[:: max(1, files // 50)]:
        assert content_hash(os.fsdecode(os.path.join(d, n))) == digest
    return rows


def _finish(ledger: Ledger, root: bytes) -> None:
    """Link jobs and mark them completed, their keywords derived and written, as a run that ended well leaves them."""
    for (directory,) in ledger.query("SELECT DISTINCT dir FROM files WHERE job_id IS NULL"):
        hashes = [
            h for (h,) in ledger.query("SELECT content_hash FROM files WHERE dir = ? AND job_id IS NULL", (directory,))
        ]
        ledger.files.link_folder(ENDPOINT, directory, hashes)
    now = time.time()
    with ledger.transaction() as c:
        c.execute(
            "UPDATE jobs SET state = 'completed', status = 'completed', caption = 'a small purple square', token = 'tok-' || id,"
            " attempts = 1, polls = 1, submitted_at = ?, settled_at = ? WHERE state = 'queued'",
            (now, now),
        )
        c.execute(
            "UPDATE files SET written_job = job_id, written_at = ?, sidecar = dir || '/' || name || '.xmp'"
            " WHERE written_job IS NULL AND job_id IS NOT NULL",
            (now + 1,),
        )
    from tagger.config import Config
    from tagger.keywords.stored import keyword_rules, refresh_keywords

    config = Config()  # the timed runs' settings: the write-back of a run that ended well derived keywords under them
    refresh_keywords(ledger, keyword_rules(config.vocabulary, config.unmapped, config.locale, config.keyword_parent))


def fill_ledger(path: str, root: bytes, rows: list[tuple[bytes, bytes, int, int, str]]) -> None:
    """Record the tree as a finished run leaves it."""
    with Ledger(path) as ledger:
        for start in range(0, len(rows), BATCH):
            ledger.files.upsert(
                [(d, n, root, s, m, h, "active", None) for d, n, s, m, h in rows[start : start + BATCH]]
            )
        _finish(ledger, root)


def pad_ledger(path: str, other_root: bytes, count: int, per_folder: int) -> None:
    """Add ``count`` finished rows under ``other_root``, a folder that is not on disk and not scanned."""
    with Ledger(path) as ledger:
        for start in range(0, count, BATCH):
            batch = []
            for i in range(start, min(count, start + BATCH)):
                directory = other_root + b"/d%06d" % (i // per_folder)
                digest = hashlib.sha256(b"padding %d" % i).hexdigest()
                batch.append(
                    (
                        directory,
                        b"IMG_%07d.jpg" % i,
                        other_root,
                        400,
                        1_600_000_000_000_000_000 + i,
                        digest,
                        "active",
                        None,
                    )
                )
            ledger.files.upsert(batch)
        _finish(ledger, other_root)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall time, CPU time (user + system) and output of one child process."""
    cpu, start = _children_cpu(), time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stdout
    return time.perf_counter() - start, _children_cpu() - cpu, out


def time_find(root: Path) -> tuple[float, float]:
    """Wall and CPU time of ``find`` printing size and mtime of every file."""
    wall, cpu, _ = _timed(["find", str(root), "-type", "f", "-printf", "%s %T@\\n"])
    return wall, cpu


def run_child(ledger: str, root: Path) -> dict:
    """One no-op ``run()`` in a fresh process (timed inside it, after its imports), as the child reports it."""
    return json.loads(_timed([sys.executable, __file__, "--child", ledger, str(root)])[2])


def time_command(ledger: str, root: Path) -> tuple[float, float]:
    """Wall and CPU time of the whole ``tagger run`` command, a process of its own (start-up and imports included)."""
    env = dict(os.environ, TAGGER_CONFIG="")
    argv = [
        sys.executable,
        "-c",
        "from tagger.cli import main; main()",
        "run",
        str(root),
        "--endpoint",
        BASE_URL,
        "--api-key",
        "never-used",
        "--ledger",
        ledger,
        "--quiet",
    ]
    wall, cpu, out = _timed(argv, env)
    if not out.startswith("new 0, submitted 0,"):
        raise SystemExit(f"the command was not a no-op: {out!r}")
    return wall, cpu


def measure(ledger: str, root: Path, repeat: int) -> dict:
    """``repeat`` rounds of find, no-op run(), find, whole command; interleaved, so load falls on each alike."""
    finds, runs, commands = [], [], []
    for _ in range(repeat):
        finds.append(time_find(root))
        runs.append(run_child(ledger, root))
        finds.append(time_find(root))
        commands.append(time_command(ledger, root))
    return {"find": finds, "runs": runs, "commands": commands}


def _bytecode(compile_first: bool) -> str:
    """Compile tagger's modules as an install does (``compile_first``); says whether runs read cached bytecode."""
    import compileall
    import importlib.util

    import tagger

    package = os.path.dirname(tagger.__file__)
    if compile_first:
        compileall.compile_dir(package, quiet=1)  # __pycache__ beside the sources, as pip writes at install
    cached = os.path.exists(importlib.util.cache_from_source(os.path.join(package, "cli.py")))
    if cached:
        return f"tagger's modules ({package}) run from cached bytecode, as installed"
    return (
        f"tagger's modules ({package}) have no cached bytecode"
        + (" (PYTHONDONTWRITEBYTECODE is set)" if sys.dont_write_bytecode else "")
        + ": every timed process compiles them, which no installed tagger does"
    )


def _vm(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(ledger_path: str, root: str) -> None:
    """A whole nightly no-op ``tagger run`` (lock, sweep, plan, write-back check, summary), timed, as JSON.

    The plan alone is timed too, after it (CPU time). The service is never called: nothing is new.
    """
    from tagger import cloudsight as cs
    from tagger.config import Config
    from tagger.pipeline.plan import plan
    from tagger.pipeline.runner import run

    baseline = _vm("VmRSS")
    config = Config(ledger=ledger_path, api_key="never-used")
    api = cs.API(cs.SimpleAuth("never-used"), base_url=BASE_URL)
    run_start, cpu_start = time.perf_counter(), time.process_time()
    result = run(config, [root], api=api, endpoint_id=ENDPOINT)
    run_end, cpu_end = time.perf_counter(), time.process_time()
    assert result.tally.submitted == 0 and result.tally.polls == 0 and result.exit_code == 0
    # The plan alone, once more (the same no-op: it finds what the run found).
    plan_start = time.process_time()
    with Ledger(ledger_path) as ledger:
        ledger.acquire()
        plan(ledger, [root], ENDPOINT)
    plan_cpu = time.process_time() - plan_start
    print(
        json.dumps(
            {
                "seconds": run_end - run_start,
                "cpu_seconds": cpu_end - cpu_start,
                "plan_cpu_seconds": plan_cpu,
                "plan": result.plan.as_dict(),
                "baseline_kb": baseline,
                "vmhwm_kb": _vm("VmHWM"),
            }
        )
    )


def _check_noop(result: dict, files: int) -> None:
    counts = result["plan"]
    expected = dict.fromkeys(counts, 0) | {"unchanged": files}
    if counts != expected:
        raise SystemExit(f"the plan was not a no-op: {counts}")


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _report(label: str, files: int, rows: int, first: dict, m: dict, first_is: str) -> dict:
    """Print one measurement; returns its peak and baseline RSS."""
    find_wall = [w for w, _ in m["find"]]
    find_cpu = [c for _, c in m["find"]]
    run_wall = [r["seconds"] for r in m["runs"]]
    run_cpu = [r["cpu_seconds"] for r in m["runs"]]
    cmd_wall = [w for w, _ in m["commands"]]
    cmd_cpu = [c for _, c in m["commands"]]
    plan_cpu = [r["plan_cpu_seconds"] for r in m["runs"]]
    peak = max(r["vmhwm_kb"] for r in m["runs"])
    baseline = max(r["baseline_kb"] for r in m["runs"])
    fmed, fbest = _median(find_cpu), min(find_cpu)
    fwmed, fwbest = _median(find_wall), min(find_wall)
    print(
        f"{label} | {files:,} files | {rows:,} ledger rows | {len(m['runs'])} rounds\n"
        f"  find                 wall median {fwmed:6.3f} s best {fwbest:6.3f} s | CPU median {fmed:6.3f} s best {fbest:6.3f} s\n"
        f"  first no-op run()    wall {first['seconds']:6.3f} s ({first['seconds'] / fwmed:.2f}x) | "
        f"CPU {first['cpu_seconds']:6.3f} s ({first['cpu_seconds'] / fmed:.2f}x)   ({first_is})\n"
        f"  no-op run()          wall median {_median(run_wall):6.3f} s best {min(run_wall):6.3f} s | "
        f"CPU median {_median(run_cpu):6.3f} s best {min(run_cpu):6.3f} s (plan alone {_median(plan_cpu):.3f})\n"
        f"      ratio to find    wall median {_median(run_wall) / fwmed:4.2f}x best {min(run_wall) / fwbest:4.2f}x | "
        f"CPU median {_median(run_cpu) / fmed:4.2f}x best {min(run_cpu) / fbest:4.2f}x\n"
        f"  whole `tagger run`   wall median {_median(cmd_wall):6.3f} s best {min(cmd_wall):6.3f} s | "
        f"CPU median {_median(cmd_cpu):6.3f} s best {min(cmd_cpu):6.3f} s (a process: start-up and imports included)\n"
        f"      ratio to find    wall median {_median(cmd_wall) / fwmed:4.2f}x best {min(cmd_wall) / fwbest:4.2f}x | "
        f"CPU median {_median(cmd_cpu) / fmed:4.2f}x best {min(cmd_cpu) / fbest:4.2f}x "
        f"(target at most {TARGET:g}x: {'met' if _median(cmd_cpu) / fmed <= TARGET else 'NOT met'})\n"
        f"  peak RSS of run()    {peak / 1024:6.1f} MB (interpreter and imports {baseline / 1024:.1f} MB)",
        flush=True,
    )
    return {"peak_kb": peak, "baseline_kb": baseline}


def main(argv: list[str] | None = None) -> int:
    """Build, warm, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="files on disk (default 100,000)")
    parser.add_argument("--rows", type=int, help="ledger rows for the second measurement (default 10x --files)")
    parser.add_argument("--per-folder", type=int, default=1000, help="files per folder (default 1,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 files and 100,000 rows")
    parser.add_argument("--dir", help="work in this folder (kept) instead of a temporary one (removed)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of timings of each (default 5): median and best")
    parser.add_argument(
        "--no-compile", action="store_true", help="do not compile tagger's modules to bytecode first (as installed)"
    )
    parser.add_argument("--child", nargs=2, metavar=("LEDGER", "ROOT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    print(_bytecode(compile_first=not args.no_compile), flush=True)
    files = 10_000 if args.quick else args.files
    rows = args.rows or files * 10
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tagger-bench-"))
    try:
        tree = work / "tree"
        if tree.exists():
            shutil.rmtree(tree)
        ledger = str(work / "ledger.sqlite")
        for suffix in ("", "-wal", "-shm", ".lock"):
            if os.path.exists(ledger + suffix):
                os.remove(ledger + suffix)
        start = time.perf_counter()
        on_disk = build_tree(tree, files, args.per_folder)
        fill_ledger(ledger, os.fsencode(tree), on_disk)
        del on_disk
        print(f"built {files:,} files and their ledger in {time.perf_counter() - start:.1f} s ({work})", flush=True)
        time_find(tree)  # warm the dentry and inode caches
        first = run_child(ledger, tree)  # the first no-op after the captioning run
        _check_noop(first, files)
        m = measure(ledger, tree, args.repeat)
        for result in m["runs"]:
            _check_noop(result, files)
        small = _report("small", files, files, first, m, "the first after the captioning run: it marks the folders")
        if rows > files:
            start = time.perf_counter()
            pad_ledger(ledger, os.fsencode(work / "elsewhere"), rows - files, args.per_folder)
            print(f"padded the ledger to {rows:,} rows in {time.perf_counter() - start:.1f} s", flush=True)
            time_find(tree)
            first = run_child(ledger, tree)
            _check_noop(first, files)
            m = measure(ledger, tree, args.repeat)
            for result in m["runs"]:
                _check_noop(result, files)
            big = _report("large", files, rows, first, m, "the first after the padding")
            growth = (big["peak_kb"] - big["baseline_kb"]) / max(1, small["peak_kb"] - small["baseline_kb"])
            print(f"{rows // files}x the ledger rows: peak RSS above the interpreter grew {growth:.2f}x", flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
