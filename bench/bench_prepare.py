"""Benchmark image preparation: tagger's normaliser against naive Pillow, pyvips and decode floors.

    python bench/bench_prepare.py            # a few minutes
    python bench/bench_prepare.py --quick    # under a minute

Generates photo-like 12 MP and 24 MP JPEGs (half with EXIF orientation 6) and
12 MP RGBA PNGs in a temporary folder, then measures images per second in one
process, in one process per core, and (for tagger) in threads and in
``Preparer(processes=N)``. pyvips and djpeg/cjpeg are optional: missing ones are
reported, not faked.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from corpus import photo, stored_for_orientation
from PIL import Image, ImageOps

from tagger.prepare.decode import draft_scale
from tagger.prepare.normalise import PrepareOptions, Preparer, prepare

MAX_EDGE = 1024
OPTIONS = PrepareOptions(max_edge=MAX_EDGE)


def ours(path: str) -> int:
    return len(prepare(path, OPTIONS).data)


def naive(path: str) -> int:
    with Image.open(path) as im:
        im.load()  # decode in full: no draft
        im = ImageOps.exif_transpose(im).convert("RGB")
        im.thumbnail((MAX_EDGE, MAX_EDGE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=85)
        return len(out.getvalue())


def vips(path: str) -> int:
    import pyvips

    thumb = pyvips.Image.thumbnail(path, MAX_EDGE)
    if thumb.hasalpha():
        thumb = thumb.flatten(background=[255, 255, 255])
    return len(thumb.write_to_buffer(".jpg[Q=85,strip]"))


def djpeg_cjpeg(path: str) -> int:
    with Image.open(path) as im:
        scale = draft_scale(im.width, im.height, MAX_EDGE)
    djpeg = subprocess.run(["djpeg", "-scale", f"1/{scale}", path], capture_output=True, check=True)
    return len(subprocess.run(["cjpeg", "-quality", "85"], input=djpeg.stdout, capture_output=True, check=True).stdout)


def decode_floor(path: str) -> int:
    with Image.open(path) as im:
        scale = draft_scale(im.width, im.height, MAX_EDGE)
        if im.format == "JPEG" and scale > 1:
            im.draft("RGB", (im.width // scale, im.height // scale))
        im.load()
        return im.width


def make_images(folder: Path, count: int) -> dict[str, list[str]]:
    """count files each of 12 MP JPEG, 24 MP JPEG and 12 MP RGBA PNG."""
    sets: dict[str, list[str]] = {"12MP jpeg": [], "24MP jpeg": [], "12MP png rgba": []}
    for label, size in (("12MP jpeg", (4000, 3000)), ("24MP jpeg", (6000, 4000))):
        for i in range(count):
            im = photo(size, seed=i)
            orientation = 6 if i % 2 else 1
            exif = Image.Exif()
            exif[0x0112] = orientation
            path = folder / f"{label.split()[0]}_{i}.jpg"
            stored_for_orientation(im, orientation).save(path, quality=90, exif=exif.tobytes())
            sets[label].append(str(path))
    for i in range(count):
        im = photo((4000, 3000), seed=i).convert("RGBA")
        im.putalpha(Image.linear_gradient("L").resize(im.size))
        path = folder / f"png_{i}.png"
        im.save(path, compress_level=6)
        sets["12MP png rgba"].append(str(path))
    return sets


def rate_serial(func: Callable[[str], int], paths: list[str], rounds: int) -> float:
    func(paths[0])  # warm up imports and caches
    start = time.perf_counter()
    for _ in range(rounds):
        for path in paths:
            func(path)
    return rounds * len(paths) / (time.perf_counter() - start)


def rate_pool(func: Callable[[str], int], paths: list[str], rounds: int, workers: int, kind: str) -> float:
    # forkserver: forking a parent that has started libvips or Pillow threads can deadlock.
    context = multiprocessing.get_context("forkserver")
    executor = ProcessPoolExecutor(workers, mp_context=context) if kind == "processes" else ThreadPoolExecutor(workers)
    with executor as pool:
        list(pool.map(func, paths[:1] * workers))
        work = paths * rounds
        start = time.perf_counter()
        list(pool.map(func, work))
        return len(work) / (time.perf_counter() - start)


def rate_preparer(paths: list[str], rounds: int, workers: int) -> float:
    with Preparer(OPTIONS, processes=workers) as preparer, ThreadPoolExecutor(max_workers=workers) as threads:
        list(threads.map(preparer.prepare, paths[:1] * workers))
        work = paths * rounds
        start = time.perf_counter()
        list(threads.map(preparer.prepare, work))
        return len(work) / (time.perf_counter() - start)


def available() -> dict[str, str]:
    """Optional competitors and why one is missing."""
    missing: dict[str, str] = {}
    try:
        import pyvips

        pyvips.Image.black(1, 1)
    except Exception as exc:  # ImportError, or the libvips shared library not found
        missing["pyvips"] = f"pyvips unavailable ({type(exc).__name__}: {exc}); pip install pyvips pyvips-binary"
    if not (shutil.which("djpeg") and shutil.which("cjpeg")):
        missing["djpeg|cjpeg"] = "djpeg/cjpeg not found; apt-get install libjpeg-turbo-progs"
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds")
    args = parser.parse_args()
    count, rounds = (2, 2) if args.quick else (4, 4)
    cores = os.cpu_count() or 1
    missing = available()
    for reason in missing.values():
        print("note:", reason)
    methods: dict[str, Callable[[str], int]] = {
        "tagger": ours,
        "naive pillow": naive,
        "pyvips": vips,
        "djpeg|cjpeg": djpeg_cjpeg,
        "decode floor": decode_floor,
    }
    results: dict[tuple[str, str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"generating {count} images per set ...", flush=True)
        sets = make_images(Path(tmp), count)
        for label, paths in sets.items():
            for name, func in methods.items():
                if name in missing or (name == "djpeg|cjpeg" and "jpeg" not in label):
                    continue
                results[(label, name, "1 proc")] = rate_serial(func, paths, rounds)
                results[(label, name, f"{cores} procs")] = rate_pool(func, paths, rounds, cores, "processes")
                if name == "tagger":
                    results[(label, name, f"{cores} threads")] = rate_pool(func, paths, rounds, cores, "threads")
                    results[(label, name, f"Preparer({cores})")] = rate_preparer(paths, rounds, cores)
                print(f"  {label:14} {name:13} done", flush=True)
    report(results, sets.keys(), cores)


def report(results: dict[tuple[str, str, str], float], labels: object, cores: int) -> None:
    columns = ["1 proc", f"{cores} procs", f"{cores} threads", f"Preparer({cores})"]
    print(f"\nimages per second (long edge {MAX_EDGE}, JPEG q85)")
    print(f"{'set':14} {'method':13} " + " ".join(f"{c:>12}" for c in columns))
    for label in labels:
        for name in ("tagger", "naive pillow", "pyvips", "djpeg|cjpeg", "decode floor"):
            if (label, name, "1 proc") not in results:
                continue
            cells = [results.get((label, name, c)) for c in columns]
            print(f"{label:14} {name:13} " + " ".join(f"{c:12.1f}" if c else f"{'-':>12}" for c in cells))
    print("\nRATIOS (tagger / other, same column)")
    for label in labels:
        for other in ("naive pillow", "pyvips", "decode floor"):
            pairs = [
                f"{c}: {results[(label, 'tagger', c)] / results[(label, other, c)]:.2f}"
                for c in columns[:2]
                if (label, other, c) in results
            ]
            if pairs:
                print(f"  {label:14} tagger / {other:13} " + "  ".join(pairs))


if __name__ == "__main__":
    main()
