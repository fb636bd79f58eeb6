"""Keywords from captions: the words that carry meaning, cleaned the way photo apps need them.

Rules (the same for every writer): Unicode NFC, whitespace collapsed and
trimmed, control characters dropped, ``|`` and ``/`` replaced by a space
(they are hierarchy separators in ``lr:hierarchicalSubject`` and
``digiKam:TagsList``), duplicates dropped case-insensitively keeping the first
spelling, order kept. ``keywords_from`` also lower-cases and drops stop
words; it keeps single words only, so the result is predictable from the
caption alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["STOP_WORDS", "keywords_from", "clean_keywords"]

STOP_WORDS = frozenset(
    """
    a an the and or but nor of in on at to from by for with without into onto upon over under
    above below beside besides near next behind between among around through across along
    against toward towards up down out off about as is are was were be been being am it its
    this that these those there here some several many few very front top side while who whom
    which what whose his her hers their theirs our ours my mine your yours he she they we you
    i me him them us has have having had do does doing not no other each also than then so
    such too just only like can will one two three four five six seven eight nine ten
    """.split()
)

# A word: letters/digits, with inner apostrophes or hyphens ("black-and-white", "o'clock").
_WORD = re.compile(r"[^\W_](?:[\w'\u2019-]*[^\W_])?")
_POSSESSIVE = re.compile(r"['\u2019]s$")
_SEPARATORS = re.compile(r"[|/]")


def _drop_unwritable(text: str) -> str:
    # Controls become spaces; surrogates (undecodable file-name bytes) and U+FFFE/F vanish.
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Cc":
            out.append(" ")
        elif cat != "Cs" and ch not in "\ufffe\uffff":
            out.append(ch)
    return "".join(out)


def clean_keywords(words: Iterable[str]) -> list[str]:
    """NFC, trimmed, separators replaced, deduplicated case-insensitively; first spelling and order kept."""
    seen: set[str] = set()
    result: list[str] = []
    for word in words:
        if word is None:
            continue
        text = unicodedata.normalize("NFC", _drop_unwritable(str(word)))
        text = " ".join(_SEPARATORS.sub(" ", text).split())
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            result.append(text)
    return result


def keywords_from(caption: str | None, categories: Iterable[str] = ()) -> list[str]:
    """Lower-case keywords: the caption's words minus stop words, then the categories."""
    words: list[str] = []
    if caption:
        text = unicodedata.normalize("NFC", _drop_unwritable(caption)).lower()
        for match in _WORD.finditer(text):
            word = _POSSESSIVE.sub("", match.group())
            if len(word) > 1 and not word.isdigit() and word not in STOP_WORDS:
                words.append(word)
    words.extend(str(c).lower() for c in categories if c is not None)
    return clean_keywords(words)
