"""Tests for tagger.sheet.page: the contact sheet, checked in real headless Chromium."""

from __future__ import annotations

import io
import os
import random
import re
import time
from pathlib import Path

import pytest
from browser import visible_cards, wait_visible_thumbs
from PIL import Image, ImageDraw, ImageFilter
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tagger.exports.records import Record
from tagger.exports.writer import ExportError
from tagger.sheet.page import PAGE_SIZE, write_report
from tagger.sheet.thumbs import budget_for, thumbnail_jpeg

INJECTION = "<img src=x onerror=\"document.title='pwned'\">"
SCRIPT_CLOSE = "</script><script>document.title='pwned2'</script>"


def photo(path: Path, seed: int, size: tuple[int, int] = (640, 480), orientation: int | None = None) -> Path:
    """A photo-like JPEG: gradient, shapes and a little grain (compresses like a real photo)."""
    rng = random.Random(seed)
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    img = Image.blend(img, Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3))), 0.6)
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x, y, r = rng.randrange(size[0]), rng.randrange(size[1]), rng.randrange(10, size[0] // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    img = Image.blend(img, Image.effect_noise(size, 40).convert("RGB"), 0.15).filter(ImageFilter.GaussianBlur(1))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, "JPEG", quality=88, exif=exif.tobytes())
    return path


def rec(root: Path, relpath: str, **kw) -> Record:
    """A record for ``root/relpath``."""
    kw.setdefault("status", "completed")
    return Record(path=str(root / relpath), relpath=relpath, filename=os.path.basename(relpath), **kw)


def artifacts(tmp_path: Path) -> Path:
    """Where screenshots go: $TAGGER_ARTIFACTS, else the test's tmp_path."""
    folder = Path(os.environ.get("TAGGER_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def search_for(driver, text: str, relpaths: list[str]) -> None:
    """Type ``text`` into the search box and wait for exactly the cards at ``relpaths``."""
    box = driver.find_element(By.ID, "search")
    box.clear()
    box.send_keys(text)
    script = "return Array.from(document.querySelectorAll('#grid .card .rel')).map(e => e.textContent).sort()"
    try:
        WebDriverWait(driver, 5).until(lambda d: d.execute_script(script) == sorted(relpaths))
    except Exception:
        assert driver.execute_script(script) == sorted(relpaths)
        raise


@pytest.fixture()
def sheet(tmp_path: Path) -> tuple[Path, list[Record]]:
    """A contact sheet of 30 records: photos, a rotated one, an unreadable and a missing file, an injection."""
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    for i in range(6):
        photo(root / "a" / f"p{i}.jpg", i)
    photo(root / "b" / "p0.jpg", 99)
    photo(root / "a" / "rotated.jpg", 7, size=(480, 240), orientation=6)
    Image.new("RGBA", (300, 200), (200, 30, 30, 120)).save(root / "b" / "alpha.png")
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    records = [
        rec(root, "a/p0.jpg", caption="a red barn beside a wheat field", keywords=("barn", "wheat field")),
        rec(root, "b/p0.jpg", caption="a grey cat asleep on a sofa", keywords=("cat", "sofa")),
        rec(root, "a/p1.jpg", caption="an old red tractor", keywords=("tractor", "farm")),
        rec(root, "a/p2.jpg", status="skipped", reason="blurry"),
        rec(root, "a/p3.jpg", status="skipped", reason="offensive"),
        rec(root, "a/p4.jpg", status="timeout", reason="timeout"),
        rec(root, "a/rotated.jpg", caption="a lighthouse on a cliff", keywords=("lighthouse",)),
        rec(root, "b/alpha.png", caption="a translucent red square", keywords=("red",)),
        rec(root, "b/broken.jpg", status="failed", reason="unreadable"),
        rec(root, "b/gone.jpg", status="not found", reason="not found"),
        rec(root, "a/p5.jpg", caption=INJECTION, keywords=(SCRIPT_CLOSE, "x&y")),
    ]
    for i in range(19):
        records.append(
            rec(
                root,
                f"a/p{i % 6}.jpg",
                caption=f"filler picture number {i}",
                keywords=("filler",),
                status="pending" if i % 5 == 0 else "completed",
            )
        )
    dest = tmp_path / "report.html"
    summary = {
        "counts": {"completed": 20, "skipped": 2, "timeout": 1, "failed": 1, "not found": 1, "pending": 4},
        "reasons": {"blurry": 1, "offensive": 1, "timeout": 1, "unreadable": 1},
        "credits_used": 27,
        "first_run": "2026-01-15T10:00:00Z",
        "last_run": "2026-01-16T09:30:00Z",
        "endpoint": "http://127.0.0.1:8765/<b>",
    }
    assert write_report(records, str(dest), summary=summary) == len(records)
    return dest, records


def test_page_is_self_contained_and_escaped(sheet: tuple[Path, list[Record]]) -> None:
    dest, _ = sheet
    text = dest.read_text(encoding="utf-8")
    assert INJECTION not in text and "<img src=x" not in text
    assert text.count("</script>") == 3  # records, thumbnails, code: none from the data
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "default-src 'none'" in text
    assert "http://127.0.0.1:8765/&lt;b&gt;" in text


@pytest.mark.slow
def test_contact_sheet_in_chromium(browser, sheet: tuple[Path, list[Record]], tmp_path: Path) -> None:
    dest, records = sheet
    browser.get(dest.as_uri())
    assert browser.title == "tagger contact sheet"
    assert len(visible_cards(browser)) == len(records)
    assert wait_visible_thumbs(browser) >= 6
    out = artifacts(tmp_path) / "report-contact-sheet.png"
    browser.save_screenshot(str(out))
    assert out.stat().st_size > 10_000

    header = browser.find_element(By.TAG_NAME, "header").text
    for expected in (
        "Credits used",
        "27",
        "2026-01-15T10:00:00Z",
        "2026-01-16T09:30:00Z",
        "completed",
        "blurry",
        "http://127.0.0.1:8765/<b>",
    ):
        assert expected in header

    # Unreadable and missing files get a placeholder instead of a thumbnail.
    placeholders = browser.execute_script(
        "return Array.from(document.querySelectorAll('.card')).filter(c => c.querySelector('.ph'))"
        ".map(c => c.querySelector('.rel').textContent)"
    )
    assert sorted(placeholders) == ["b/broken.jpg", "b/gone.jpg"]

    # EXIF orientation 6: a 480x240 file shows upright as portrait.
    rotated = "Array.from(document.querySelectorAll('.card')).find(c => c.querySelector('.rel').textContent === 'a/rotated.jpg')"
    browser.execute_script(f"{rotated}.scrollIntoView()")
    WebDriverWait(browser, 5).until(
        lambda d: d.execute_script(f"const i = {rotated}.querySelector('img'); return i.complete && i.naturalWidth > 0")
    )
    dims = browser.execute_script(f"const i = {rotated}.querySelector('img'); return [i.naturalWidth, i.naturalHeight]")
    assert dims[1] > dims[0] > 0

    # Status filter.
    Select(browser.find_element(By.ID, "status")).select_by_value("failed")
    assert visible_cards(browser) == ["broken.jpg"]
    Select(browser.find_element(By.ID, "status")).select_by_value("skipped")
    assert sorted(visible_cards(browser)) == ["p2.jpg", "p3.jpg"]
    Select(browser.find_element(By.ID, "status")).select_by_value("pending")
    assert len(visible_cards(browser)) == sum(r.status == "pending" for r in records) == 4
    Select(browser.find_element(By.ID, "status")).select_by_value("")
    assert len(visible_cards(browser)) == len(records)

    # Reason filter.
    Select(browser.find_element(By.ID, "reason")).select_by_value("blurry")
    assert visible_cards(browser) == ["p2.jpg"]
    Select(browser.find_element(By.ID, "reason")).select_by_value("")

    # Text search over caption, keywords and file name (all words must match, any case).
    search_for(browser, "red", ["a/p0.jpg", "a/p1.jpg", "b/alpha.png"])
    search_for(browser, "red barn", ["a/p0.jpg"])
    search_for(browser, "SOFA", ["b/p0.jpg"])
    search_for(browser, "rotated", ["a/rotated.jpg"])
    search_for(browser, "no such words", [])
    assert browser.find_element(By.CSS_SELECTOR, "#grid .empty").text == "No image matches these filters."

    # The injection caption is text, never markup.
    search_for(browser, "onerror", ["a/p5.jpg"])
    card = browser.find_element(By.CSS_SELECTOR, "#grid .card")
    assert card.find_element(By.CSS_SELECTOR, ".cap").get_attribute("textContent") == INJECTION
    keywords = [li.get_attribute("textContent") for li in card.find_elements(By.CSS_SELECTOR, ".kw li")]
    assert keywords == [SCRIPT_CLOSE, "x&y"]
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"], .cap *, .kw li *').length") == 0
    browser.save_screenshot(str(artifacts(tmp_path) / "report-injection-card.png"))
    time.sleep(0.2)
    assert browser.title == "tagger contact sheet"
    # Nothing was fetched: thumbnails are data: URIs, which are not resource loads.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


@pytest.mark.slow
def test_ten_thousand_records_stay_small_and_lazy(browser, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    distinct = 12
    for i in range(distinct):
        photo(root / f"img{i:02d}.jpg", i, size=(1600, 1200))
    statuses = ("completed",) * 7 + ("skipped", "timeout", "failed")
    n = 10_000

    def records():
        for i in range(n):
            status = statuses[i % len(statuses)]
            yield rec(
                root,
                f"img{i % distinct:02d}.jpg",
                status=status,
                caption=f"photo {i} of a street market with fruit stalls" if status == "completed" else None,
                keywords=("market", "fruit", f"k{i}") if status == "completed" else (),
                reason=None if status == "completed" else status,
            )

    dest = tmp_path / "big.html"
    started = time.perf_counter()
    assert write_report(records(), str(dest), summary={"counts": {"completed": 7000}}) == n
    elapsed = time.perf_counter() - started
    size = dest.stat().st_size
    # "Small" means: ~0.3 KB per record plus one ≤4 KB thumbnail (base64) per distinct file.
    budget = 64_000 + 300 * n + distinct * (budget_for(160) * 4 // 3 + 100)
    assert size < budget, f"{size} bytes > {budget}"
    assert size < 4_000_000
    assert elapsed < 15, elapsed

    started = time.perf_counter()
    browser.get(dest.as_uri())
    WebDriverWait(browser, 20).until(lambda d: len(visible_cards(d)) == PAGE_SIZE)
    opened = time.perf_counter() - started
    assert opened < 10, opened
    assert browser.execute_script("return document.querySelectorAll('.card').length") == PAGE_SIZE
    assert wait_visible_thumbs(browser) > 0
    with_src = browser.execute_script(
        "return Array.from(document.querySelectorAll('#grid img')).filter(i => i.src).length"
    )
    assert 0 < with_src < PAGE_SIZE  # off-screen thumbnails are not attached yet
    assert browser.find_element(By.ID, "count").text == f"{n} of {n} images"

    # Scrolling to the end brings the next page.
    browser.execute_script("document.getElementById('more').scrollIntoView()")
    WebDriverWait(browser, 5).until(lambda d: len(visible_cards(d)) == 2 * PAGE_SIZE)

    # Filters work over all 10,000 records, not just the cards in the DOM.
    Select(browser.find_element(By.ID, "status")).select_by_value("failed")
    assert browser.find_element(By.ID, "count").text == f"{n // 10} of {n} images"
    assert len(visible_cards(browser)) == PAGE_SIZE
    browser.find_element(By.ID, "search").send_keys("img03")
    expected = sum(1 for i in range(n) if i % 10 == 9 and i % distinct == 3)
    WebDriverWait(browser, 5).until(lambda d: d.find_element(By.ID, "count").text == f"{expected} of {n} images")
    assert set(visible_cards(browser)) == {"img03.jpg"}
    assert len(visible_cards(browser)) == min(expected, PAGE_SIZE)


def test_thumbnails_fit_budget_and_stand_upright(tmp_path: Path) -> None:
    photo(tmp_path / "wide.jpg", 1, size=(2000, 1000), orientation=8)
    noise = Image.effect_noise((1200, 900), 120).convert("RGB")
    noise.save(tmp_path / "noise.jpg", quality=95)
    upright = thumbnail_jpeg(str(tmp_path / "wide.jpg"), 160)
    assert upright is not None and len(upright) <= 4096
    with Image.open(io.BytesIO(upright)) as im:
        assert im.size == (80, 160)
    worst = thumbnail_jpeg(str(tmp_path / "noise.jpg"), 160)
    assert worst is not None and len(worst) <= budget_for(160)
    assert thumbnail_jpeg(str(tmp_path / "missing.jpg"), 160) is None
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    assert thumbnail_jpeg(str(tmp_path / "bad.jpg"), 160) is None
    originals = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    write_report([rec(tmp_path, n) for n in originals], str(tmp_path / "r.html"), summary={})
    assert {n: (tmp_path / n).read_bytes() for n in originals} == {n: v[0] for n, v in originals.items()}
    assert {n: (tmp_path / n).stat().st_mtime_ns for n in originals} == {n: v[1] for n, v in originals.items()}


def test_unwritable_destination_and_bad_edge(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="cannot write"):
        write_report([], str(tmp_path / "no" / "r.html"), summary={})
    with pytest.raises(ExportError, match="edge"):
        write_report([], str(tmp_path / "r.html"), summary={}, thumb_edge=0)
    assert list(tmp_path.iterdir()) == []
