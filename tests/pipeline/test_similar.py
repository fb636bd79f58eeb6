"""Similar photos share one caption: copies cost one credit, look-alikes and crops their own.

The pipeline runs against the emulator over real sockets; the emulator's
submission counter says what was paid; exiftool reads the sidecars back; the
CSV is read as a spreadsheet would.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import config_for, dry_with, exiftool_json, run_with
from similar_corpus import COPIES, album, copies, crops, lookalike, save, scene

from tagger.cli import cli
from tagger.exports.readout import iter_records
from tagger.exports.writer import write_export
from tagger.ledger.store import JobState, Ledger
from tagger.pipeline.similar import Reuse
from tagger.prepare.decode import decode
from tagger.prepare.fingerprint import fingerprint, same_photo
from tagger.sheet.page import write_report


def _csv(config, dest: Path) -> dict[str, dict]:
    with Ledger(config.ledger_path) as ledger:
        write_export(iter_records(ledger), str(dest))
    with open(dest, newline="", encoding="utf-8") as f:
        return {Path(row["absolute_path"]).name: row for row in csv.DictReader(f)}


def _sidecars(paths: dict[str, Path]) -> dict[str, dict]:
    names = list(paths)
    metas = exiftool_json(*[paths[n].with_name(paths[n].name + ".xmp") for n in names])
    return dict(zip(names, metas, strict=True))


@pytest.mark.slow
def test_copies_cost_one_credit_look_alikes_and_crops_their_own(emulator, tmp_path, browser):
    paths = album(tmp_path / "album")
    config = config_for(emulator, tmp_path)
    dry = dry_with(emulator, config, [tmp_path / "album"])
    assert emulator.counters()["submissions"] == 0
    result = run_with(emulator, config, [tmp_path / "album"])
    assert result.exit_code == 0, result.stopped
    sent = emulator.counters()["submissions"]
    assert sent == 4  # one for the original and its 9 copies, one each for the look-alike and the two crops
    assert result.tally.submitted == 4 and result.tally.reused == 9
    assert (dry.plan.new, dry.plan.credits, dry.plan.similar) == (13, sent, 9)  # the forecast is what was paid

    rows = _csv(config, tmp_path / "out.csv")
    metas = _sidecars(paths)
    family = ["original.jpg", *COPIES]
    captions = {rows[n]["caption"] for n in family}
    assert len(captions) == 1 and captions != {""}
    lenders = [n for n in family if not rows[n]["reused_from"]]
    assert len(lenders) == 1  # whichever was prepared first was sent; the others share its answer
    lender_path = str(paths[lenders[0]])
    for name in family:
        assert rows[name]["status"] == "completed"
        assert metas[name]["XMP-dc:Description"] == rows[name]["caption"]
        if name != lenders[0]:
            assert rows[name]["reused_from"] == lender_path
            assert metas[name]["XMP-tagger:ReusedFrom"] == lender_path
    assert "XMP-tagger:ReusedFrom" not in metas[lenders[0]]
    for name in ("lookalike.jpg", "crop90_centre.jpg", "crop_left_side.jpg"):
        assert rows[name]["status"] == "completed" and rows[name]["reused_from"] == ""
        assert "XMP-tagger:ReusedFrom" not in metas[name]

    # The contact sheet marks the reused captions, naming the photo they came from.
    with Ledger(config.ledger_path) as ledger:
        write_report(iter_records(ledger), str(tmp_path / "sheet.html"), summary={})
    browser.get((tmp_path / "sheet.html").as_uri())
    marks = browser.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('.card')).map(c => "
        "[c.querySelector('.name').textContent, c.querySelector('.reused') ? c.querySelector('.reused').title : '']))"
    )
    assert set(marks) == set(paths)
    for name, title in marks.items():
        if rows[name]["reused_from"]:
            assert lender_path in title
        else:
            assert title == ""

    again = run_with(emulator, config, [tmp_path / "album"])
    assert emulator.counters()["submissions"] == sent and again.plan.credits == 0


@pytest.mark.slow
def test_retry_reused_sends_exactly_the_files_named(emulator, tmp_path):
    paths = album(tmp_path / "album", seed=8)
    config = config_for(emulator, tmp_path)
    assert run_with(emulator, config, [tmp_path / "album"]).exit_code == 0
    before = emulator.counters()["submissions"]
    rows = _csv(config, tmp_path / "before.csv")
    reused = sorted(n for n, row in rows.items() if row["reused_from"])
    assert len(reused) == 9
    named = [paths[reused[0]], paths[reused[3]]]
    out = CliRunner().invoke(
        cli, ["retry", "--ledger", config.ledger_path, "--endpoint", emulator.url, "--reused", *map(str, named)]
    )
    assert out.exit_code == 0, out.output
    assert "2 jobs queued again" in out.output
    dry = dry_with(emulator, config, [tmp_path / "album"])
    assert (dry.plan.credits, dry.plan.similar) == (2, 0)
    result = run_with(emulator, config, [tmp_path / "album"])
    assert result.exit_code == 0
    assert emulator.counters()["submissions"] == before + 2
    after = _csv(config, tmp_path / "after.csv")
    for name, row in after.items():
        if paths[name] in named:
            assert row["reused_from"] == "" and row["token"]  # its own answer now
        else:
            assert row["reused_from"] == rows[name]["reused_from"]
    metas = _sidecars({p.name: p for p in named})
    for meta in metas.values():
        assert "XMP-tagger:ReusedFrom" not in meta and meta["XMP-tagger:Token"]
    # Sent on their own once, they are not folded into their original again.
    assert run_with(emulator, config, [tmp_path / "album"]).plan.credits == 0
    assert emulator.counters()["submissions"] == before + 2


@pytest.mark.slow
def test_reuse_similar_false_sends_every_file(emulator, tmp_path):
    album(tmp_path / "album", seed=5)
    config = config_for(emulator, tmp_path, reuse_similar=False)
    dry = dry_with(emulator, config, [tmp_path / "album"])
    result = run_with(emulator, config, [tmp_path / "album"])
    assert result.exit_code == 0 and result.tally.reused == 0
    assert emulator.counters()["submissions"] == 13 == dry.plan.credits
    assert dry.plan.similar == 0


def _fp(data: bytes, name: str):
    return fingerprint(decode(data, name, 1024, 10**9, False).image)


@pytest.mark.slow
def test_the_fingerprint_tells_copies_from_look_alikes_and_crops():
    im = scene(11)
    original = _fp(save(im, "JPEG", quality=92), "o.jpg")
    for name, data in copies(im).items():
        fp = _fp(data, name)
        assert same_photo(original, fp), name
        assert fp.key in original.probes(), name  # the index finds it
    assert not same_photo(original, _fp(save(lookalike(11, 12), "JPEG", quality=92), "l.jpg"))
    for name, data in crops(im).items():
        assert not same_photo(original, _fp(data, name)), name


def _ledger_with_jobs(tmp_path: Path, n: int) -> tuple[Ledger, list]:
    ledger = Ledger(str(tmp_path / "l.sqlite"))
    with ledger.transaction() as c:
        for i in range(n):
            c.execute(
                "INSERT INTO jobs (content_hash, endpoint, state, created_at) VALUES (?, 'e', 'queued', 0)", (f"h{i}",)
            )
    return ledger, ledger.jobs_in_state("e", JobState.QUEUED)


@pytest.mark.slow
def test_the_second_of_two_similar_files_waits_for_the_first_and_shares_its_answer(tmp_path):
    im = scene(21)
    a, b = _fp(save(im, "JPEG", quality=92), "a.jpg"), _fp(save(im, "PNG"), "b.png")
    ledger, (job_a, job_b) = _ledger_with_jobs(tmp_path, 2)
    reuse = Reuse(ledger, "e")
    assert reuse.claim(job_a, a) is None  # first: sent
    assert reuse.claim(job_b, b) is False  # second: waits for the first
    assert ledger.query("SELECT state, similar_to FROM jobs WHERE id = ?", (job_b.id,))[0][:] == ("waiting", job_a.id)
    assert reuse.settled(job_a.id) == ([], [])  # the lender is still in flight: nothing yet
    ledger.settle(job_a.id, JobState.COMPLETED, {"status": "completed", "name": "a red barn", "categories": ["barn"]})
    shared, requeued = reuse.settled(job_a.id)
    assert shared == [job_b.id] and requeued == []
    assert ledger.query("SELECT state, caption, categories, similar_to FROM jobs WHERE id = ?", (job_b.id,))[0][:] == (
        "completed",
        "a red barn",
        '["barn"]',
        job_a.id,
    )
    ledger.close()


def test_a_lender_that_is_skipped_lends_nothing_its_waiter_is_sent(tmp_path):
    im = scene(22)
    a, b = _fp(save(im, "JPEG", quality=92), "a.jpg"), _fp(save(im, "WEBP", quality=80), "b.webp")
    ledger, (job_a, job_b) = _ledger_with_jobs(tmp_path, 2)
    reuse = Reuse(ledger, "e")
    reuse.claim(job_a, a)
    assert reuse.claim(job_b, b) is False
    ledger.settle(job_a.id, JobState.SKIPPED, {"status": "skipped", "reason": "unsure"})
    shared, requeued = reuse.settled(job_a.id)
    assert shared == [] and [j.id for j in requeued] == [job_b.id]
    assert ledger.query("SELECT state, similar_to FROM jobs WHERE id = ?", (job_b.id,))[0][:] == ("queued", None)
    # Prepared again, it finds no lender (a skipped job lends nothing) and is sent.
    assert reuse.claim(requeued[0], b) is None
    ledger.close()


def test_a_waiter_left_by_a_crash_is_settled_at_the_next_start(tmp_path):
    im = scene(23)
    a, b = _fp(save(im, "JPEG", quality=92), "a.jpg"), _fp(save(im, "JPEG", quality=60), "b.jpg")
    ledger, (job_a, job_b) = _ledger_with_jobs(tmp_path, 2)
    reuse = Reuse(ledger, "e")
    reuse.claim(job_a, a)
    reuse.claim(job_b, b)
    ledger.settle(job_a.id, JobState.COMPLETED, {"status": "completed", "name": "a cat"})  # then the run died
    assert ledger.outstanding("e")  # the waiter keeps the next run from being a no-op
    shared, requeued = Reuse(ledger, "e").resume()
    assert shared == [job_b.id] and requeued == []
    assert ledger.query("SELECT caption FROM jobs WHERE id = ?", (job_b.id,))[0][0] == "a cat"
    ledger.close()


@pytest.mark.slow
def test_the_dry_run_says_how_many_are_similar_and_the_config_turns_reuse_off(tmp_path):
    album(tmp_path / "album", seed=9)
    ledger = str(tmp_path / "l.sqlite")
    out = CliRunner().invoke(cli, ["run", "--dry-run", "--ledger", ledger, str(tmp_path / "album")])
    assert out.exit_code == 0, out.output
    assert "13 new" in out.output and "9 similar to a captioned photo" in out.output
    assert "4 credits would be spent" in out.output
    off = tmp_path / "off.toml"
    off.write_text("[run]\nreuse_similar = false\n")
    out = CliRunner().invoke(
        cli, ["--config", str(off), "run", "--dry-run", "--ledger", ledger, str(tmp_path / "album")]
    )
    assert out.exit_code == 0, out.output
    assert "0 similar" in out.output and "13 credits would be spent" in out.output
    assert not Path(ledger).exists()  # a dry run writes nothing
