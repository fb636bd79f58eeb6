"""The review page in real headless Chromium: decide by keyboard and by mouse, reload, apply, read the sidecars back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import exiftool_json
from review_corpus import HOSTILE, held_archive
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tagger.review.server import ReviewServer
from tagger.sidecars.writeback import SidecarOptions

pytestmark = pytest.mark.slow


def cards(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#list .card")


def wait_for(driver, condition, timeout: float = 20):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def current_index(driver) -> int:
    return int(driver.find_element(By.CSS_SELECTOR, ".card.current").get_attribute("data-index"))


def badge(driver, i: int) -> str:
    return cards(driver)[i].find_element(By.CSS_SELECTOR, ".badge").text


def recorded(ledger: str) -> dict[str, tuple[str, str | None]]:
    con = sqlite3.connect(ledger)
    try:
        rows = con.execute(
            "SELECT f.name, r.decision, r.caption FROM reviews r JOIN files f ON f.id = r.file_id"
        ).fetchall()
    finally:
        con.close()
    return {name.decode(): (decision, caption) for name, decision, caption in rows}


def press(driver, key: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def test_decide_by_keyboard_and_mouse_reload_apply_and_read_back(browser, emulator, photos, tmp_path):
    config = held_archive(emulator, photos, tmp_path, hostile=HOSTILE)
    with ReviewServer(config.ledger_path, SidecarOptions(), thumb_dir=str(tmp_path / "thumbs")) as srv:
        browser.get(srv.url)
        wait_for(browser, lambda d: len(cards(d)) == 6 and d.execute_script("return window.reviewReady"))
        names = [c.find_element(By.CSS_SELECTOR, ".path").text.rsplit("/", 1)[-1] for c in cards(browser)]
        assert names == ["IMG_0000.JPG", "IMG_0002.JPG", "IMG_0004.JPG", "IMG_0001.JPG", "IMG_0003.JPG", "IMG_0005.JPG"]

        # The hostile caption shows as text: nothing of it ran, no element came of it.
        hostile = cards(browser)[2].find_element(By.CSS_SELECTOR, ".caption")
        assert hostile.text == HOSTILE
        assert browser.execute_script("return window.pwned") is None
        assert hostile.find_elements(By.CSS_SELECTOR, "*") == []
        assert "<b>bold</b>" in cards(browser)[2].find_element(By.CSS_SELECTOR, ".keywords").text
        imgs = browser.find_elements(By.CSS_SELECTOR, "img")
        assert len(imgs) == 6 and all("/thumb/" in i.get_attribute("src") for i in imgs)
        wait_for(
            browser,
            lambda d: d.execute_script("return document.images[0].complete && document.images[0].naturalWidth") > 0,
        )

        # Keyboard: approve, edit, reject; each moves on to the next photo.
        assert current_index(browser) == 0
        press(browser, "a")
        wait_for(
            browser, lambda d: current_index(d) == 1 and recorded(srv.ledger_path)["IMG_0000.JPG"][0] == "approved"
        )
        press(browser, "e")
        area = wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".card.current textarea"))
        area.send_keys(Keys.CONTROL, "a")
        area.send_keys("A tabby cat asleep on a red sofa")
        area.send_keys(Keys.ENTER)
        wait_for(browser, lambda d: recorded(srv.ledger_path)["IMG_0002.JPG"][0] == "edited" and current_index(d) == 2)
        press(browser, "r")
        wait_for(
            browser, lambda d: recorded(srv.ledger_path)["IMG_0004.JPG"][0] == "rejected" and current_index(d) == 3
        )
        press(browser, "k")
        wait_for(browser, lambda d: current_index(d) == 2)
        press(browser, "j")
        wait_for(browser, lambda d: current_index(d) == 3)

        # Mouse: approve, edit (with the person's own keywords), reject.
        cards(browser)[3].find_element(By.CSS_SELECTOR, "button[data-action=approved]").click()
        wait_for(browser, lambda d: recorded(srv.ledger_path)["IMG_0001.JPG"][0] == "approved")
        cards(browser)[4].find_element(By.CSS_SELECTOR, "button[data-action=edit]").click()
        area = wait_for(browser, lambda d: cards(d)[4].find_element(By.CSS_SELECTOR, "textarea"))
        area.clear()
        area.send_keys("Two herons by a pond")
        words = cards(browser)[4].find_element(By.CSS_SELECTOR, "form input")
        words.clear()
        words.send_keys("heron; pond")
        cards(browser)[4].find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(browser, lambda d: recorded(srv.ledger_path)["IMG_0003.JPG"][0] == "edited")
        cards(browser)[5].find_element(By.CSS_SELECTOR, "button[data-action=rejected]").click()
        wait_for(browser, lambda d: recorded(srv.ledger_path)["IMG_0005.JPG"][0] == "rejected")
        assert recorded(srv.ledger_path)["IMG_0002.JPG"] == ("edited", "A tabby cat asleep on a red sofa")

        # Reload: the decisions were kept (in the ledger, not the page).
        browser.refresh()
        wait_for(browser, lambda d: len(cards(d)) == 6 and d.execute_script("return window.reviewReady"))
        assert [badge(browser, i) for i in range(6)] == [
            "approved",
            "edited",
            "rejected",
            "approved",
            "edited",
            "rejected",
        ]
        edited = cards(browser)[1]
        assert edited.find_element(By.CSS_SELECTOR, ".caption").text == "A tabby cat asleep on a red sofa"
        assert {"cat", "sofa"} <= set(
            edited.find_element(By.CSS_SELECTOR, ".keywords").text.removeprefix("Keywords: ").split(", ")
        )

        # Filters: status and text.
        browser.find_element(By.CSS_SELECTOR, "#f-decision option[value=rejected]").click()
        wait_for(browser, lambda d: len(cards(d)) == 2)
        browser.find_element(By.CSS_SELECTOR, "#f-decision option[value='']").click()
        wait_for(browser, lambda d: len(cards(d)) == 6)
        browser.find_element(By.ID, "f-text").send_keys("herons")
        wait_for(browser, lambda d: len(cards(d)) == 1)

        # Apply (the button): the sidecars get exactly what was decided.
        browser.find_element(By.ID, "apply").click()
        wait_for(browser, lambda d: d.find_element(By.ID, "message").text.startswith("applied"))
        assert "4 sidecar(s) written" in browser.find_element(By.ID, "message").text

        # A request without the token is refused, in the browser too.
        browser.get(srv.origin + "/")
        assert "refused" in browser.find_element(By.TAG_NAME, "body").text
        # A page of another origin cannot change a decision (its POST is cross-origin, refused or blocked).
        browser.get("data:text/html,<p>elsewhere</p>")
        before = recorded(srv.ledger_path)
        status = browser.execute_async_script(
            """const done = arguments[arguments.length - 1];
               fetch(arguments[0] + '/api/decide', {method: 'POST', mode: 'no-cors',
                 headers: {'Content-Type': 'text/plain'}, body: JSON.stringify({ids: [1], decision: 'awaiting'})})
                 .then(r => done('sent ' + r.type), e => done('blocked'));""",
            srv.origin,
        )
        assert status in ("sent opaque", "blocked")
        assert recorded(srv.ledger_path) == before

    sidecar = lambda p: Path(str(p) + ".xmp")  # noqa: E731
    a, b, c = photos / "IMG_0000.JPG", photos / "IMG_0002.JPG", photos / "IMG_0004.JPG"
    d, e, f = photos / "sub" / "IMG_0001.JPG", photos / "sub" / "IMG_0003.JPG", photos / "sub" / "IMG_0005.JPG"
    assert sorted(photos.rglob("*.xmp")) == sorted(map(sidecar, (a, b, d, e)))
    read = {Path(m["SourceFile"]).name: m for m in exiftool_json(*map(sidecar, (a, b, d, e)))}
    assert read["IMG_0000.JPG.xmp"]["XMP-tagger:Review"] == "approved"
    assert read["IMG_0000.JPG.xmp"]["XMP-dc:Description"] == read["IMG_0000.JPG.xmp"]["XMP-tagger:Caption"]
    assert read["IMG_0002.JPG.xmp"]["XMP-dc:Description"] == "A tabby cat asleep on a red sofa"
    assert read["IMG_0002.JPG.xmp"]["XMP-tagger:Review"] == "edited"
    assert {"cat", "sofa"} <= set(read["IMG_0002.JPG.xmp"]["XMP-dc:Subject"])
    assert read["IMG_0003.JPG.xmp"]["XMP-dc:Description"] == "Two herons by a pond"
    assert sorted(read["IMG_0003.JPG.xmp"]["XMP-dc:Subject"]) == ["heron", "pond"]
    assert not sidecar(c).exists() and not sidecar(f).exists()
    assert emulator.counters()["submissions"] == 6
