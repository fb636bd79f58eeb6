"""The user's vocabulary: parsing the three formats, and the paths a run writes (read back with exiftool)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import exiftool_json

from tagger.config import Config
from tagger.errors import UsageError
from tagger.exports.readout import iter_records
from tagger.exports.writer import write_export
from tagger.keywords.derive import KeywordRules, derive
from tagger.keywords.stored import keyword_rules
from tagger.keywords.vocabulary import VocabularyError, load_vocabulary, parse_vocabulary
from tagger.ledger.store import JobState, Ledger
from tagger.pipeline.runner import make_api, run

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"
FAST = dict(first_poll_delay=0.1, poll_interval=0.05, max_poll_interval=0.2, retry_budget=20.0)

# A Lightroom Classic "Export Keywords" file: tabs for depth, {synonyms}, [not included on export].
LIGHTROOM = (
    "[Places]\n\tUSA\n\t\t{American}\n"
    "Space\n\tGalaxy\n\tHubble Deep Field\n\t\t{HDF}\n\tRocket\n\t\tLaunch Pad\n\tSpacesuit\n"
    "People\n\tAstronaut\n"
    "Food\n\tDrinks\n\t\tCoffee\n\t\t\t{espresso}\n\tTableware\n\t\tSaucer\n\t\tSpoon\n"
    "Objects\n\tFlag\n\t\tAmerican Flag\n\tTower\n"
)
THESAURUS = (
    "path,synonyms\n"
    "Space|Galaxy,\n"
    "Space|Hubble Deep Field,HDF\n"
    "Food|Drinks|Coffee,espresso; ristretto\n"
    "Food|Tableware|Saucer,\n"
    "Objects|Flag,\n"
    "Objects|Flag|American Flag,\n"
    "People|Astronaut,spaceman\n"
)
DIGIKAM = "Animals/Mammals/Cat\nAnimals/Mammals/Dog\nSpace/Rocket\nSpace/Rocket/Launch Pad\nBuildings/Tower\n"

# The emulator's captions for these sample images (tagger/emulator/catalog.json):
#   hubble_deep_field  many small galaxies against a black sky, Hubble deep field
#   coffee             cup of espresso on a red saucer with a spoon on a wooden table
#   astronaut          astronaut in an orange spacesuit with her helmet beside her, in front of an American flag
#   rocket             rocket on a launch pad at dusk between lightning towers
#   chelsea            close-up of a tabby cat's face
IMAGES = ("hubble_deep_field.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")


def photo_tree(tmp_path: Path, names=IMAGES) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for name in names:
        shutil.copy(SAMPLES / name, root / name)
    return root


def run_with(emulator, tmp_path: Path, photos: Path, *, rewrite: bool = False, **extra):
    config = Config(
        **dict(FAST, api_key=emulator.key, endpoint=emulator.url, ledger=str(tmp_path / "ledger.sqlite"), **extra)
    )
    with make_api(config) as api:
        return config, run(config, [str(photos)], api=api, rewrite_sidecars=rewrite)


def _list(value) -> list[str]:
    return value if isinstance(value, list) else [] if value is None else [value]


def fields(photos: Path, name: str) -> tuple[list[str], list[str], list[str]]:
    """(lr:hierarchicalSubject, digiKam:TagsList, dc:subject) as exiftool reads them from the sidecar."""
    (meta,) = exiftool_json(photos / f"{name}.xmp")
    return (
        _list(meta.get("XMP-lr:HierarchicalSubject")),
        _list(meta.get("XMP-digiKam:TagsList")),
        _list(meta.get("XMP-dc:Subject")),
    )


def slashed(paths: list[str]) -> list[str]:
    return [p.replace("|", "/") for p in paths]


# --- parsing -----------------------------------------------------------------------------------


def test_lightroom_export_tree_synonyms_and_private_keywords():
    v = parse_vocabulary(LIGHTROOM, "keywords.txt")
    assert v.kind == "lightroom"
    terms = {t.path: t for t in v.terms}
    assert terms[("Places",)].private == (True,)
    assert terms[("Places", "USA")].private == (True, False)
    assert terms[("Places", "USA")].synonyms == ("American",)
    assert terms[("Food", "Drinks", "Coffee")].synonyms == ("espresso",)
    assert ("Space", "Rocket", "Launch Pad") in terms and ("Objects", "Tower") in terms


def test_lightroom_depth_jumps_hang_under_the_deepest_parent_and_crlf_and_bom_are_read(tmp_path):
    path = tmp_path / "kw.txt"
    path.write_bytes("\ufeffA\r\n\t\t\tB\r\n\tC\r\n".encode("utf-8"))
    assert [t.path for t in load_vocabulary(str(path)).terms] == [("A",), ("A", "B"), ("A", "C")]
    path.write_bytes("A\n\tB\n\t\t{bee}\n".encode("utf-16"))  # Lightroom on Windows
    assert load_vocabulary(str(path)).terms[1].synonyms == ("bee",)


def test_csv_thesaurus_and_digikam_list_imply_every_ancestor():
    c = parse_vocabulary(THESAURUS, "thesaurus.csv")
    assert c.kind == "csv"
    assert [t.path for t in c.terms][:3] == [("Space",), ("Space", "Galaxy"), ("Space", "Hubble Deep Field")]
    assert {t.path: t.synonyms for t in c.terms}[("Food", "Drinks", "Coffee")] == ("espresso", "ristretto")
    d = parse_vocabulary(DIGIKAM, "tags.txt")
    assert d.kind == "digikam"
    assert [t.path for t in d.terms][:3] == [("Animals",), ("Animals", "Mammals"), ("Animals", "Mammals", "Cat")]
    # A header names the CSV format even without the extension.
    assert parse_vocabulary("Path,Synonyms\nA|B,bee\n", "export").kind == "csv"


def test_bad_vocabularies_are_one_sentence(tmp_path):
    with pytest.raises(VocabularyError, match="needs a 'path' column"):
        parse_vocabulary("name,synonyms\nCat,kitty\n", "t.csv")
    with pytest.raises(VocabularyError, match="cannot read the vocabulary"):
        load_vocabulary(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(VocabularyError, match="holds no keywords"):
        load_vocabulary(str(tmp_path / "empty.txt"))
    (tmp_path / "latin1.txt").write_bytes(b"Caf\xe9\n")
    with pytest.raises(VocabularyError, match="not UTF-8"):
        load_vocabulary(str(tmp_path / "latin1.txt"))
    assert issubclass(VocabularyError, UsageError)  # exit 2, before anything is sent


@pytest.mark.slow
def test_matching_lemmas_synonyms_longest_phrase_and_case():
    v = parse_vocabulary("Street\n\tFire Hydrant\n\tFire\nAnimals\n\tCat\n\t\t{kitty}\n\tDog\n", "kw.txt")
    kw = derive("Two DOGS and a kitty beside red fire hydrants, a fire", (), KeywordRules(v))
    assert kw.paths == (
        ("Animals", "Dog"),
        ("Animals", "Cat"),
        ("CloudSight", "red"),
        ("Street", "Fire Hydrant"),
        ("Street", "Fire"),
    )
    assert kw.subject == ("Dog", "Animals", "Cat", "red", "Fire Hydrant", "Street", "Fire")
    assert kw.unmapped == ("red",)
    # A phrase never spans punctuation: "fire, hydrant" is two words.
    assert derive("fire, hydrant", (), KeywordRules(v, "drop")).paths == (("Street", "Fire"),)


def test_stop_words_never_match_alone_but_vague_words_in_the_vocabulary_do():
    v = parse_vocabulary("Film\n\tUp\nTechnique\n\tClose-up\n", "kw.txt")
    kw = derive("close-up of a cat looking up", (), KeywordRules(v, "drop"))
    assert kw.paths == (("Technique", "Close-up"),)


@pytest.mark.slow
def test_german_vocabulary_matches_german_lemmas():
    v = parse_vocabulary("Tiere\n\tHund\n\tKatze\nMöbel\n\tSofa\n", "kw.txt")
    kw = derive("Zwei Hunde und eine Katze auf dem Sofa", (), KeywordRules(v, "keep", "de"))
    assert kw.paths == (("Tiere", "Hund"), ("Tiere", "Katze"), ("Möbel", "Sofa"))
    assert kw.unmapped == ()


def test_categories_match_the_vocabulary_too():
    v = parse_vocabulary("Animals/Cat\n", "tags.txt")
    kw = derive("a grey sofa", ["cats", "Furniture"], KeywordRules(v))
    assert kw.paths == (("CloudSight", "grey"), ("CloudSight", "sofa"), ("Animals", "Cat"), ("CloudSight", "furniture"))


# --- end to end: emulator captions, sidecars read back with exiftool ---------------------------------


@pytest.mark.slow
def test_lightroom_vocabulary_paths_in_every_field(emulator, tmp_path):
    photos = photo_tree(tmp_path)
    vocab = tmp_path / "keywords.txt"
    vocab.write_text(LIGHTROOM)
    config, result = run_with(emulator, tmp_path, photos, vocabulary=str(vocab))
    assert result.exit_code == 0 and result.sidecars_written == 4
    expected = {
        # Plural "galaxies" finds Galaxy; "Hubble deep field" is one phrase, matched case-insensitively.
        "hubble_deep_field.jpg": (
            ["CloudSight|small", "Space|Galaxy", "CloudSight|black", "CloudSight|sky", "Space|Hubble Deep Field"],
            ["small", "Galaxy", "Space", "black", "sky", "Hubble Deep Field"],
        ),
        # "espresso" finds Coffee through its synonym.
        "coffee.jpg": (
            [
                "CloudSight|cup",
                "Food|Drinks|Coffee",
                "CloudSight|red",
                "Food|Tableware|Saucer",
                "Food|Tableware|Spoon",
                "CloudSight|wooden",
                "CloudSight|table",
            ],
            ["cup", "Coffee", "Drinks", "Food", "red", "Saucer", "Tableware", "Spoon", "wooden", "table"],
        ),
        # "American flag" before "flag", and before the synonym American of the private [Places]|USA.
        "astronaut.jpg": (
            [
                "People|Astronaut",
                "CloudSight|orange",
                "Space|Spacesuit",
                "CloudSight|helmet",
                "Objects|Flag|American Flag",
            ],
            ["Astronaut", "People", "orange", "Spacesuit", "Space", "helmet", "American Flag", "Flag", "Objects"],
        ),
        "rocket.jpg": (
            ["Space|Rocket", "Space|Rocket|Launch Pad", "CloudSight|dusk", "CloudSight|lightning", "Objects|Tower"],
            ["Rocket", "Space", "Launch Pad", "dusk", "lightning", "Tower", "Objects"],
        ),
    }
    for name, (paths, subject) in expected.items():
        hierarchical, tags, dc_subject = fields(photos, name)
        assert hierarchical == paths, name
        assert tags == slashed(paths), name
        assert dc_subject == subject, name
    # The CSV holds the keywords the sidecars hold, from the same stored derivation.
    out = tmp_path / "out.csv"
    with Ledger(config.ledger_path) as ledger:
        write_export(iter_records(ledger), str(out))
    with open(out, newline="", encoding="utf-8") as f:
        rows = {row["filename"]: row["keywords"] for row in csv.DictReader(f)}
    assert {n: rows[n] for n in expected} == {n: "; ".join(s) for n, (_, s) in expected.items()}
    # So does the contact sheet (each card's keywords are a JSON list in the page).
    from tagger.sheet.page import write_report

    page = tmp_path / "sheet.html"
    with Ledger(config.ledger_path) as ledger:
        write_report(iter_records(ledger), str(page), summary={})
    html = page.read_text(encoding="utf-8")
    for _, subject in expected.values():
        assert json.dumps(subject, separators=(",", ":")) in html


@pytest.mark.slow
def test_csv_thesaurus_with_unmapped_words_dropped(emulator, tmp_path):
    photos = photo_tree(tmp_path, ("hubble_deep_field.jpg", "coffee.jpg", "astronaut.jpg"))
    vocab = tmp_path / "thesaurus.csv"
    vocab.write_text(THESAURUS)
    _, result = run_with(emulator, tmp_path, photos, vocabulary=str(vocab), unmapped="drop")
    assert result.exit_code == 0
    expected = {
        "hubble_deep_field.jpg": (["Space|Galaxy", "Space|Hubble Deep Field"], ["Galaxy", "Hubble Deep Field"]),
        "coffee.jpg": (["Food|Drinks|Coffee", "Food|Tableware|Saucer"], ["Coffee", "Saucer"]),
        "astronaut.jpg": (["People|Astronaut", "Objects|Flag|American Flag"], ["Astronaut", "American Flag"]),
    }
    for name, (paths, subject) in expected.items():
        assert fields(photos, name) == (paths, slashed(paths), subject), name


@pytest.mark.slow
def test_digikam_tag_list_with_unmapped_words_kept(emulator, tmp_path):
    photos = photo_tree(tmp_path, ("chelsea.jpg", "rocket.jpg"))
    vocab = tmp_path / "tags.txt"
    vocab.write_text(DIGIKAM)
    _, result = run_with(emulator, tmp_path, photos, vocabulary=str(vocab), keyword_parent="AI")
    assert result.exit_code == 0
    # "close-up" is a vague word; "cat's" finds Cat.
    assert fields(photos, "chelsea.jpg") == (
        ["AI|tabby", "Animals|Mammals|Cat", "AI|face"],
        ["AI/tabby", "Animals/Mammals/Cat", "AI/face"],
        ["tabby", "Cat", "face"],
    )
    assert fields(photos, "rocket.jpg") == (
        ["Space|Rocket", "Space|Rocket|Launch Pad", "AI|dusk", "AI|lightning", "Buildings|Tower"],
        ["Space/Rocket", "Space/Rocket/Launch Pad", "AI/dusk", "AI/lightning", "Buildings/Tower"],
        ["Rocket", "Launch Pad", "dusk", "lightning", "Tower"],
    )
    # strip takes the vocabulary's paths back out like any keyword tagger added.
    from tagger.sidecars.write import strip_sidecar

    assert strip_sidecar(str(photos / "rocket.jpg.xmp")) == "deleted"


def tagger_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    return subprocess.run(
        [sys.executable, "-P", "-m", "tagger", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.slow
def test_vocabulary_unmapped_counts_words_over_the_ledger(emulator, tmp_path):
    photos = photo_tree(tmp_path, ("hubble_deep_field.jpg", "coffee.jpg", "astronaut.jpg"))
    shutil.copy(photos / "hubble_deep_field.jpg", photos / "hubble_copy.jpg")  # same content: one credit, two photos
    vocab = tmp_path / "keywords.txt"
    vocab.write_text(LIGHTROOM)
    config, result = run_with(emulator, tmp_path, photos, vocabulary=str(vocab), unmapped="drop")
    assert result.exit_code == 0 and emulator.counters()["submissions"] == 3
    out = tagger_cli("vocabulary", "unmapped", "--ledger", config.ledger_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "     2  black",
        "     2  sky",
        "     2  small",
        "     1  cup",
        "     1  helmet",
        "     1  orange",
        "     1  red",
        "     1  table",
        "     1  wooden",
    ]
    # Dropped words are listed but not written.
    assert fields(photos, "hubble_copy.jpg")[0] == ["Space|Galaxy", "Space|Hubble Deep Field"]


@pytest.mark.slow
def test_a_changed_vocabulary_is_derived_again_and_rewritten_for_no_credit(emulator, tmp_path):
    photos = photo_tree(tmp_path, ("hubble_deep_field.jpg", "coffee.jpg"))
    vocab = tmp_path / "keywords.txt"
    vocab.write_text(LIGHTROOM)
    config, _ = run_with(emulator, tmp_path, photos, vocabulary=str(vocab))
    submissions = emulator.counters()["submissions"]
    vocab.write_text(LIGHTROOM + "Colours\n\tBlack\n\tRed\nSpace\n\tSky\n")
    # A plain run derives the keywords again in the ledger, and leaves the sidecars alone.
    _, plain = run_with(emulator, tmp_path, photos, vocabulary=str(vocab))
    assert plain.sidecars_written == 0
    assert fields(photos, "hubble_deep_field.jpg")[0][3] == "CloudSight|sky"
    con = sqlite3.connect(config.ledger_path)
    stored = dict(con.execute("SELECT caption, unmapped FROM jobs").fetchall())
    con.close()
    assert stored["many small galaxies against a black sky, Hubble deep field"] == '["small"]'
    # --rewrite-sidecars writes them.
    _, result = run_with(emulator, tmp_path, photos, vocabulary=str(vocab), rewrite=True)
    assert result.sidecars_written == 2
    assert fields(photos, "hubble_deep_field.jpg")[0] == [
        "CloudSight|small",
        "Space|Galaxy",
        "Colours|Black",
        "Space|Sky",
        "Space|Hubble Deep Field",
    ]
    assert fields(photos, "coffee.jpg")[0][2] == "Colours|Red"
    assert emulator.counters()["submissions"] == submissions


@pytest.mark.slow
def test_the_locale_picks_the_language_of_the_keywords(emulator, tmp_path):
    # The emulator answers in English whatever the locale; the keywords follow the job's locale all the same.
    photos = photo_tree(tmp_path, ("hubble_deep_field.jpg",))
    config, result = run_with(emulator, tmp_path, photos, locale="de-DE")
    assert result.exit_code == 0
    caption = "many small galaxies against a black sky, Hubble deep field"
    german = derive(caption, (), keyword_rules("", "keep", "de-DE"))
    assert german.subject != derive(caption).subject and "against" in german.subject  # no English stop word list
    assert fields(photos, "hubble_deep_field.jpg")[2] == list(german.subject)


def test_a_broken_vocabulary_stops_the_run_before_anything_is_sent(emulator, tmp_path):
    photos = photo_tree(tmp_path, ("coffee.jpg",))
    vocab = tmp_path / "thesaurus.csv"
    vocab.write_text("name\nCat\n")
    with pytest.raises(VocabularyError, match="needs a 'path' column"):
        run_with(emulator, tmp_path, photos, vocabulary=str(vocab))
    assert emulator.counters()["submissions"] == 0
    assert not (photos / "coffee.jpg.xmp").exists()


def test_a_job_no_run_has_derived_yet_is_derived_in_memory_by_the_readers(tmp_path):
    # A ledger an older tagger left: completed captions, no stored keywords; export must not write to it.
    with Ledger(str(tmp_path / "l.sqlite")) as ledger:
        folder = os.fsencode(str(tmp_path))
        ledger.files.upsert([(folder, b"a.jpg", folder, 1, 1, "h1", "active", None)])
        ledger.files.link_folder("e", folder, ["h1"])
        (job,) = ledger.jobs_in_state("e", JobState.QUEUED)
        ledger.settle(job.id, JobState.COMPLETED, {"status": "completed", "name": "two dogs on a sofa"})
        vocab = parse_vocabulary("Animals/Dog\n", "tags.txt")
        (record,) = iter_records(ledger, rules=lambda: KeywordRules(vocab, "drop"))
        assert record.keywords == ("Dog",)
        assert ledger.query("SELECT keywords, keyword_rules FROM jobs")[0] == (None, None)
        # A run's write-back stores them; readers then use the stored ones whatever rules they are handed.
        from tagger.sidecars.writeback import SidecarOptions, write_back

        write_back(ledger, SidecarOptions(enabled=False, rules=KeywordRules(vocab, "drop")))
        (record,) = iter_records(ledger, rules=KeywordRules())
        assert record.keywords == ("Dog",)
        assert ledger.query("SELECT unmapped FROM jobs")[0][0] == '["sofa"]'


def test_a_relative_vocabulary_is_beside_the_config_file(tmp_path):
    from tagger.config import load_config

    (tmp_path / "conf").mkdir()
    cfg = tmp_path / "conf" / "tagger.toml"
    cfg.write_text('[keywords]\nvocabulary = "tags.txt"\n')
    assert load_config(str(cfg), environ={}).vocabulary == str(tmp_path / "conf" / "tags.txt")
    cfg.write_text(f'[keywords]\nvocabulary = "{tmp_path / "abs.txt"}"\n')
    assert load_config(str(cfg), environ={}).vocabulary == str(tmp_path / "abs.txt")
    assert load_config(None, {"vocabulary": "rel.txt"}, environ={}).vocabulary == "rel.txt"  # a flag: as given


@pytest.mark.slow
def test_the_keywords_section_from_the_command_line(tmp_path):
    photos = photo_tree(tmp_path, ("hubble_deep_field.jpg", "gravel.jpg"))
    vocab = tmp_path / "tags.txt"
    vocab.write_text("Space/Galaxy\nGround/Gravel\n")
    cfg = tmp_path / "tagger.toml"
    cfg.write_text(
        "[run]\nfirst_poll_delay = 0.1\npoll_interval = 0.05\nmax_poll_interval = 0.2\n"
        f'[keywords]\nvocabulary = "{vocab}"\nunmapped = "drop"\n'
    )
    ledger = str(tmp_path / "l.sqlite")
    out = tagger_cli("--config", str(cfg), "run", str(photos), "--emulator", "--ledger", ledger, "--quiet")
    assert out.returncode == 0, out.stderr
    # "close-up of grey gravel": close-up is vague, grey is not in the tree and dropped.
    assert fields(photos, "gravel.jpg") == (["Ground|Gravel"], ["Ground/Gravel"], ["Gravel"])
    out = tagger_cli("vocabulary", "unmapped", "--ledger", ledger, "--json")
    assert out.returncode == 0, out.stderr
    # Equal counts in alphabetical order, ignoring case.
    assert list(json.loads(out.stdout).items()) == [
        ("black", 1),
        ("deep", 1),
        ("field", 1),
        ("grey", 1),
        ("Hubble", 1),
        ("sky", 1),
        ("small", 1),
    ]
    export = tmp_path / "out.csv"
    assert tagger_cli("--config", str(cfg), "export", "--csv", str(export), "--ledger", ledger).returncode == 0
    with open(export, newline="", encoding="utf-8") as f:
        assert {r["filename"]: r["keywords"] for r in csv.DictReader(f)} == {
            "gravel.jpg": "Gravel",
            "hubble_deep_field.jpg": "Galaxy",
        }
    cfg.write_text('[keywords]\nunmapped = "sometimes"\n')
    out = tagger_cli("--config", str(cfg), "run", str(photos), "--emulator", "--ledger", ledger)
    assert out.returncode == 2 and "unmapped must be" in out.stderr
