"""Benchmark and calibrate the similar-photo fingerprint: what must match, what must not, what it costs.

    python bench/bench_similar.py               # ~15 minutes on 2 busy cores
    python bench/bench_similar.py --quick       # a few minutes (300 images, 100,000 rows)

1. Must match: for originals (landscape-like scenes and windows cut from the
   real sample photos), resized (down to 25 % of the pixels, 2048 px and
   1280 px exports), JPEG re-encoded (quality 50, 60, 80, 95), converted
   (PNG, WebP, HEIC) and EXIF-rotated (Orientation 3, 6, 8) copies.
2. Must not match: every pair of at least 1,000 distinct images (all 4:3, so
   the aspect check does not help); look-alikes (same palette, sky, horizon
   and hills, other objects); variants (the same scene with 1 or 3 objects
   added); crops (centre 90 % and corner 80 % scaled back to the same size,
   a side cut, a square cut).
3. Cost: the fingerprint against preparing the image (decode, shrink, colour,
   orientation, JPEG encode), per image size, in the same process.
4. Lookup: ``find_lender`` in a real ledger file of N fingerprinted jobs
   (default 1,000,000, synthesised from the corpus's own fingerprints by
   regional brightness shifts and cell noise).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from corpus import photo
from helpers import make_photo
from PIL import Image
from similar_corpus import copies, crops, lookalike, save, scene, variant, window

from tagger.ledger.store import Ledger
from tagger.pipeline.similar import find_lender
from tagger.prepare.decode import decode
from tagger.prepare.fingerprint import COLOUR_MAX, DETAIL_MAX, DETAIL_MEAN, Fingerprint, fingerprint, same_photo
from tagger.prepare.normalise import PrepareOptions, prepare

SIZE = (1600, 1200)


def fp_of(data: bytes, name: str) -> Fingerprint:
    """Decode as the normaliser does, then fingerprint."""
    return fingerprint(decode(data, name, 1024, 10**9, False).image)


def distinct(i: int, tmp: Path) -> Image.Image:
    """The i-th distinct image: 6 in 10 scenes, 3 in 10 windows of the real samples, 1 in 10 make_photo cards."""
    kind = i % 10
    if kind < 6:
        return scene(10_000 + i, SIZE)
    if kind < 9:
        return window(20_000 + i, SIZE)
    with Image.open(make_photo(tmp / f"card{i}.jpg", 30_000 + i, SIZE)) as im:
        return im.convert("RGB")


def false_matches(prints: list[Fingerprint]) -> tuple[int, int, list[tuple[int, int]]]:
    """(pairs checked, pairs that pass same_photo, the first few of them), over every pair."""
    detail = np.array([list(p.detail) for p in prints], dtype=np.int16)
    colour = np.array([list(p.colour) for p in prints], dtype=np.int16)
    aspect = np.array([p.aspect for p in prints])
    n = len(prints)
    hits: list[tuple[int, int]] = []
    count = 0
    for i in range(n - 1):
        d = np.abs(detail[i + 1 :] - detail[i])
        c = np.abs(colour[i + 1 :] - colour[i])
        ok = (d.max(axis=1) <= DETAIL_MAX) & (d.mean(axis=1) <= DETAIL_MEAN) & (c.max(axis=1) <= COLOUR_MAX)
        ok &= np.abs(aspect[i + 1 :] - aspect[i]) <= 0.01 * np.minimum(aspect[i + 1 :], aspect[i])
        for j in np.nonzero(ok)[0]:
            count += 1
            if len(hits) < 10:
                hits.append((i, i + 1 + int(j)))
    return n * (n - 1) // 2, count, hits


def margins(a: Fingerprint, b: Fingerprint) -> tuple[int, float, int]:
    d = [abs(x - y) for x, y in zip(a.detail, b.detail, strict=True)]
    return max(d), sum(d) / len(d), max(abs(x - y) for x, y in zip(a.colour, b.colour, strict=True))


def calibrate(originals: int) -> None:
    must: dict[str, list[tuple[int, float, int, bool, bool]]] = {}
    mustnot: dict[str, list[tuple[int, float, int, bool]]] = {}
    for i in range(originals):
        im = scene(i, SIZE) if i % 2 == 0 else window(i, SIZE)
        base = fp_of(save(im, "JPEG", quality=92), "o.jpg")
        for name, data in copies(im).items():
            other = fp_of(data, name)
            must.setdefault(name, []).append(
                (*margins(base, other), same_photo(base, other), other.key in base.probes())
            )
        negatives = dict(crops(im))
        if i % 2 == 0:
            negatives["lookalike"] = save(lookalike(i, i + 500, SIZE), "JPEG", quality=92)
            negatives["variant+1"] = save(variant(i, 1, SIZE), "JPEG", quality=92)
            negatives["variant+3"] = save(variant(i, 3, SIZE), "JPEG", quality=92)
        for name, data in negatives.items():
            other = fp_of(data, name)
            mustnot.setdefault(name, []).append((*margins(base, other), same_photo(base, other)))
    print(
        f"\nmust match ({originals} originals; worst cell / mean / colour difference; thresholds {DETAIL_MAX} / {DETAIL_MEAN} / {COLOUR_MAX})"
    )
    for name, rows in must.items():
        matched = sum(r[3] for r in rows)
        found = sum(r[4] for r in rows)
        print(
            f"  {name:20s} matched {matched}/{len(rows)}  found by the index {found}/{len(rows)}  "
            f"worst {max(r[0] for r in rows)} / {max(r[1] for r in rows):.2f} / {max(r[2] for r in rows)}"
        )
    print("must not match")
    for name, rows in mustnot.items():
        wrong = sum(r[3] for r in rows)
        print(
            f"  {name:20s} matched {wrong}/{len(rows)}  closest {min(r[0] for r in rows)} / {min(r[1] for r in rows):.2f} / {min(r[2] for r in rows)}"
        )


def cost(repeats: int) -> None:
    print("\ncost per image (median of runs, one process)")
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (
            ("2 MP JPEG (1600x1200)", (1600, 1200)),
            ("12 MP JPEG (4000x3000)", (4000, 3000)),
            ("24 MP JPEG (6000x4000)", (6000, 4000)),
        ):
            path = os.path.join(tmp, "p.jpg")
            scene(7, size).save(path, "JPEG", quality=90)
            options = PrepareOptions()
            prepare(path, options)  # warm caches
            prep_times, fp_times = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                prepare(path, options)
                prep_times.append(time.perf_counter() - t0)
                image = decode(Path(path).read_bytes(), "p.jpg", 1024, 10**9, False).image
                t0 = time.perf_counter()
                fingerprint(image)
                fp_times.append(time.perf_counter() - t0)
            p, f = statistics.median(prep_times), statistics.median(fp_times)
            # prepare() now includes the fingerprint: the share is of the whole.
            print(
                f"  {label:24s} prepare {p * 1000:7.1f} ms  fingerprint {f * 1000:5.2f} ms  = {100 * f / p:4.1f} % of preparing"
            )


def synthesise(prints: list[Fingerprint], n: int, rnd: random.Random) -> list[Fingerprint]:
    """n fingerprints shaped like the corpus's: a corpus print with its contrast changed, each key region
    shifted on its own and every cell jittered (so layouts repeat, as in an archive, but brightness varies)."""
    base = np.array([list(p.blob()) for p in prints], dtype=np.float32)
    out = []
    for k in range(n):
        row = base[k % len(base)].copy()
        grey = row[:256].reshape(16, 16)
        grey = (grey - 128) * rnd.uniform(0.6, 1.4) + 128
        grey += np.kron(np.array([[rnd.uniform(-60, 60) for _ in range(4)] for _ in range(2)]), np.ones((8, 4)))
        grey += np.array(rnd.choices(range(-12, 13), k=256)).reshape(16, 16)
        row[:256] = grey.reshape(256)
        row[256:] += np.array(rnd.choices(range(-30, 31), k=48))
        blob = np.clip(np.rint(row), 0, 255).astype(np.uint8).tobytes()
        out.append(
            Fingerprint.from_blob(blob, prints[k % len(prints)].aspect * rnd.choice((1.0, 1.0, 1.5, 0.75, 1.333)))
        )
    return out


def lookup(prints: list[Fingerprint], rows: int, queries: int) -> None:
    rnd = random.Random(1)
    print(f"\nlookup in a ledger of {rows:,} fingerprinted jobs")
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(os.path.join(tmp, "ledger.sqlite"))
        t0 = time.perf_counter()
        batch = 20_000
        stored: list[Fingerprint] = []
        for start in range(0, rows, batch):
            chunk = synthesise(prints, min(batch, rows - start), rnd)
            if len(stored) < queries:
                stored += chunk[: queries - len(stored)]
            with ledger.transaction() as c:
                c.executemany(
                    "INSERT INTO jobs (content_hash, endpoint, state, created_at, caption) VALUES (?, 'e', 'completed', 0, 'x')",
                    [(f"h{start + k}",) for k in range(len(chunk))],
                )
                c.executemany(
                    "INSERT INTO fingerprints (content_hash, key, means, aspect, print) VALUES (?, ?, ?, ?, ?)",
                    [(f"h{start + k}", fp.key, fp.packed_means, fp.aspect, fp.blob()) for k, fp in enumerate(chunk)],
                )
        print(f"  filled in {time.perf_counter() - t0:.0f} s; file {os.path.getsize(ledger.path) / 1e6:.0f} MB")
        ledger.query("ANALYZE")
        found = 0
        times = []
        probes = []
        # Half the queries are copies of stored prints (a match to find), half are new prints.
        for k in range(queries):
            if k % 2 == 0:
                target = stored[k]
                jitter = (
                    np.clip(
                        np.frombuffer(target.blob(), dtype=np.uint8).astype(np.int16)
                        + np.array(rnd.choices((-1, 0, 1), k=304), dtype=np.int16),
                        0,
                        255,
                    )
                    .astype(np.uint8)
                    .tobytes()
                )
                query = Fingerprint.from_blob(jitter, target.aspect)
            else:
                query = synthesise(prints, 1, rnd)[0]
            probes.append(len(query.probes()))
            t0 = time.perf_counter()
            lender = find_lender(ledger, "e", query)
            times.append(time.perf_counter() - t0)
            found += k % 2 == 0 and lender is not None
        times.sort()
        print(
            f"  {queries} lookups: median {statistics.median(times) * 1000:.2f} ms, p99 {times[int(len(times) * 0.99)] * 1000:.2f} ms, "
            f"max {times[-1] * 1000:.2f} ms; index probes per lookup median {statistics.median(probes):.0f}, max {max(probes)}; "
            f"copies found {found}/{(queries + 1) // 2}"
        )
        ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer images and rows")
    parser.add_argument("--images", type=int, help="distinct images for the false-match rate (default 1000)")
    parser.add_argument("--rows", type=int, help="ledger rows for the lookup (default 1,000,000)")
    args = parser.parse_args()
    images = args.images or (300 if args.quick else 1000)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    originals = 20 if args.quick else 60

    cost(5 if args.quick else 11)
    calibrate(originals)

    t0 = time.perf_counter()
    prints = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(images):
            prints.append(fp_of(save(distinct(i, Path(tmp)), "JPEG", quality=90), "d.jpg"))
    pairs, wrong, hits = false_matches(prints)
    print(
        f"\nfalse matches among {images} distinct images (6/10 scenes, 3/10 sample-photo windows, 1/10 make_photo "
        f"cards; all 4:3): {wrong} of {pairs:,} pairs ({time.perf_counter() - t0:.0f} s)"
    )
    for i, j in hits:
        print(f"  pair {i} {j}: margins {margins(prints[i], prints[j])}")
    # tests/corpus.photo draws one picture (same gradients and boxes) with seeded noise and shapes moved by a
    # few pixels: near-identical by design, the hardest look-alikes here.
    cards = [
        fp_of(save(photo(SIZE, seed=s), "JPEG", quality=90), "c.jpg") for s in range(100 if images >= 1000 else 30)
    ]
    card_pairs, card_wrong, _ = false_matches(cards)
    print(
        f"corpus.photo test cards (one drawing, shapes moved by under 1 % of the width, other noise): "
        f"{card_wrong} of {card_pairs:,} pairs match"
    )
    lookup(prints, rows, 400 if args.quick else 1000)


if __name__ == "__main__":
    main()
