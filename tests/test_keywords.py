"""Tests for tagger.outputs.keywords: caption words, cleaning and case-insensitive dedupe."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from tagger.outputs.keywords import STOP_WORDS, clean_keywords, keywords_from


def test_caption_words_without_stop_words():
    assert keywords_from("A red barn beside a wheat field") == ["red", "barn", "wheat", "field"]


def test_lower_case_dedupe_and_categories_after_caption_words():
    assert keywords_from("Dog and DOG on the dog's bed", ["Animal", "dog", "Pet|Home"]) == [
        "dog", "bed", "animal", "pet home",
    ]


def test_hyphenated_words_stay_whole_and_numbers_go():
    assert keywords_from("black-and-white photo of 2 cats, 1990s") == ["black-and-white", "photo", "cats", "1990s"]


def test_no_caption_gives_categories_only():
    assert keywords_from(None, ["Food", " food "]) == ["food"]
    assert keywords_from("", ()) == []


def test_clean_keeps_first_spelling_and_order():
    assert clean_keywords(["Barn", "  barn ", "BARN", "Wheat  Field", "wheat field"]) == ["Barn", "Wheat Field"]


def test_clean_replaces_separators_and_controls():
    assert clean_keywords(["People|Anna", "a/b", "tab\there", "nul\x00x", "", "  ", "|/"]) == [
        "People Anna", "a b", "tab here", "nul x",
    ]


def test_clean_normalises_to_nfc_and_dedupes_across_forms():
    decomposed = "Cafe\u0301"
    assert clean_keywords([decomposed, "caf\u00e9"]) == ["Caf\u00e9"]


def test_clean_drops_surrogates_from_undecodable_names():
    assert clean_keywords(["caf\udce9", "x\ufffey"]) == ["caf", "xy"]


def test_stop_words_are_lower_case_single_words():
    assert all(w == w.lower() and " " not in w for w in STOP_WORDS)
    assert {"a", "the", "beside", "of"} <= STOP_WORDS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=15))
def test_clean_keywords_properties(words):
    out = clean_keywords(words)
    keys = [w.casefold() for w in out]
    assert len(keys) == len(set(keys))
    for w in out:
        assert w and w == w.strip() and "|" not in w and "/" not in w
        assert unicodedata.is_normalized("NFC", w) or clean_keywords([w]) == [w]
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in w)
    assert clean_keywords(out) == out


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.lists(st.text(max_size=10), max_size=4))
def test_keywords_from_is_clean_lower_case_and_stop_word_free(caption, categories):
    out = keywords_from(caption, categories)
    assert clean_keywords(out) == out
    assert all(w == w.lower() for w in out)
    assert not set(keywords_from(caption)) & STOP_WORDS
