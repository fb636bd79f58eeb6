"""Benchmark the review page in headless Chromium: first paint and approve-and-move-to-next, 10,000 held photos.

    python bench/bench_review.py                 # 10,000 held photos against a baseline of 100
    python bench/bench_review.py --held 2000 --presses 50

The ledger is a real SQLite file whose rows are what a held run leaves
(completed jobs, files, ``awaiting`` reviews); the photos are hard links to
one small JPEG (each with its own content hash, so every thumbnail is made
once, as on a real archive). The page is served by ``ReviewServer`` in this
process and read by Chromium through chromedriver, as in the tests.

Measured, for the large ledger and for the baseline in the same process tree:

- first paint: Chromium's first-contentful-paint, and the moment the first
  page of cards is in the DOM (``window.reviewReady``), both from navigation
  start; plus the wall time of ``driver.get`` for reference;
- approve and next: from the ``a`` key to the next photo current in the DOM
  (``moved``), to the next frame painted after it (``painted``: two
  animation frames after the keydown), and to the ledger's answer
  (``saved``: the decision committed).

Targets: first paint under 1 s, next photo under 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from browser import chromium
from PIL import Image
from selenium import webdriver
from selenium.webdriver.support.ui import WebDriverWait

from tagger.ledger.store import Ledger
from tagger.review.server import ReviewServer
from tagger.sidecars.writeback import SidecarOptions

CAPTIONS = (
    "a red bicycle leaning against a brick wall",
    "two children playing football on a beach at sunset",
    "a tabby cat asleep on a blue sofa",
    "a mountain lake with pine trees and snowy peaks",
)

# Two animation frames after each keydown: the frame that shows the next photo has been produced.
PAINT_PROBE = """
window.paints = [];
document.addEventListener('keydown', (ev) => {
  const t = performance.now();
  requestAnimationFrame(() => requestAnimationFrame(() => window.paints.push(performance.now() - t)));
}, true);
"""


def build(folder: Path, held: int) -> str:
    """A ledger of ``held`` photos held for review, in 20 folders; returns its path."""
    image = folder / "source.jpg"
    Image.linear_gradient("L").resize((640, 480)).convert("RGB").save(image, "JPEG", quality=85)
    ledger_path = str(folder / "ledger.sqlite")
    now = time.time()
    with Ledger(ledger_path) as ledger, ledger.transaction() as c:
        for i in range(held):
            sub = folder / "archive" / f"{i % 20:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            name = f"IMG_{i:05d}.JPG"
            os.link(image, sub / name)
            digest = f"bench{i:08d}"
            caption = CAPTIONS[i % len(CAPTIONS)] + f" #{i}"
            keywords = json.dumps(caption.split()[1:4])
            job = c.execute(
                """INSERT INTO jobs (content_hash, endpoint, state, token, status, caption, keywords, created_at,
                   settled_at) VALUES (?, 'bench', 'completed', ?, 'completed', ?, ?, ?, ?)""",
                (digest, f"tok{i}", caption, keywords, now, now),
            ).lastrowid
            f = c.execute(
                """INSERT INTO files (dir, name, root, size, mtime_ns, content_hash, state, job_id, first_seen,
                   last_seen) VALUES (?, ?, ?, 1, 1, ?, 'active', ?, ?, ?)""",
                (os.fsencode(sub), name.encode(), os.fsencode(folder / "archive"), digest, job, now, now),
            ).lastrowid
            c.execute("INSERT INTO reviews (file_id, job_id, held_at) VALUES (?, ?, ?)", (f, job, now))
    return ledger_path


def measure(driver: webdriver.Chrome, folder: Path, held: int, presses: int, loads: int) -> dict:
    """First paint (``loads`` fresh loads) and ``presses`` approve-and-next, for a ledger of ``held`` photos."""
    ledger_path = build(folder, held)
    with ReviewServer(ledger_path, SidecarOptions(), thumb_dir=str(folder / "thumbs")) as srv:
        fcp, ready, wall = [], [], []
        for _ in range(loads):
            driver.get("about:blank")
            t = time.perf_counter()
            driver.get(srv.url)
            WebDriverWait(driver, 30, poll_frequency=0.01).until(
                lambda d: d.execute_script("return window.reviewReady")
            )
            wall.append((time.perf_counter() - t) * 1000)
            ready.append(driver.execute_script("return window.reviewReady"))
            fcp.append(
                driver.execute_script(
                    "const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null"
                )
            )
        driver.execute_script(PAINT_PROBE)
        body = driver.find_element("tag name", "body")
        for n in range(presses):
            body.send_keys("a")
            WebDriverWait(driver, 30, poll_frequency=0.005).until(
                lambda d, n=n: d.execute_script("return window.reviewTimings.length") > n
            )
        timings = driver.execute_script("return window.reviewTimings")
        paints = driver.execute_script("return window.paints")
        approved = srv.ledger.reviews.count(srv.filter_of({}))["approved"]
    assert approved == presses, f"{approved} approvals recorded, {presses} keys pressed"
    return {
        "held": held,
        "first_contentful_paint_ms": statistics.median(x for x in fcp if x is not None),
        "cards_ready_ms": statistics.median(ready),
        "get_wall_ms": statistics.median(wall),
        "moved_ms": _stats([t["moved"] for t in timings]),
        "painted_ms": _stats(paints),
        "saved_ms": _stats([t["saved"] for t in timings]),
    }


def _stats(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
        "max": round(ordered[-1], 2),
    }


def main() -> None:
    """Run both sizes in one browser and print the numbers and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--held", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--presses", type=int, default=80)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        driver = chromium(os.path.join(tmp, "profile"))
        try:
            results = {}
            for held in (args.baseline, args.held):
                folder = Path(tmp) / f"held-{held}"
                folder.mkdir()
                results[held] = measure(driver, folder, held, min(args.presses, held - 1), args.loads)
        finally:
            driver.quit()
    base, big = results[args.baseline], results[args.held]
    for r in (base, big):
        print(
            f"{r['held']:>6} held: first contentful paint {r['first_contentful_paint_ms']:.0f} ms, "
            f"cards ready {r['cards_ready_ms']:.0f} ms (driver.get {r['get_wall_ms']:.0f} ms); "
            f"approve+next: moved {r['moved_ms']['median']} ms (p95 {r['moved_ms']['p95']}), "
            f"painted {r['painted_ms']['median']} ms (p95 {r['painted_ms']['p95']}), "
            f"saved {r['saved_ms']['median']} ms (p95 {r['saved_ms']['p95']})"
        )
    ratio = lambda k, sub=None: (big[k][sub] / base[k][sub]) if sub else (big[k] / base[k])  # noqa: E731
    print(
        f"ratio {args.held}/{args.baseline}: first paint {ratio('first_contentful_paint_ms'):.2f}x, "
        f"cards ready {ratio('cards_ready_ms'):.2f}x, moved {ratio('moved_ms', 'median'):.2f}x, "
        f"painted {ratio('painted_ms', 'median'):.2f}x, saved {ratio('saved_ms', 'median'):.2f}x"
    )
    ok = big["first_contentful_paint_ms"] < 1000 and big["cards_ready_ms"] < 1000 and big["painted_ms"]["median"] < 50
    print(f"targets (first paint < 1 s, next photo < 50 ms): {'met' if ok else 'NOT met'}")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
