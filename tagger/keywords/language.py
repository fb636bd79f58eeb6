"""A caption's language: its lemmas, stop words, number words and vague words.

Lemmas come from ``simplemma`` (dictionaries inside the wheel, 50+
languages, nothing downloaded at run time). Stop words come from the
``stopwords`` package's lists, which hold function words only (articles,
pronouns, prepositions, auxiliaries); stopwords-iso's English list also
holds content words a photo is searched by ("man", "face", "fire", "small",
"back", "front"), so it is not used. The number and vague words below are
tagger's own: no library keeps lists of words that say nothing about a
picture.
"""

from __future__ import annotations

import os
import sys
import threading
from functools import lru_cache

# simplemma and stopwords are imported where words are first looked up: importing simplemma reads its
# rule tables (0.15 s), which a run that derives no keyword (a nightly no-op) never needs.

__all__ = ["Language", "language", "language_code", "LIBRARY_VERSIONS"]

# Prepositions of place the stop-word lists miss; they are all over captions ("a cat beside a sofa").
_MORE_STOP = {
    "en": "beside besides near next behind among amongst around across along toward towards onto upon amid "
    "atop beneath within without inside outside front",
    "de": "neben zwischen gegen ohne um innerhalb außerhalb entlang vorne hinten oben unten eins",
    "fr": "devant derrière près entre contre vers sans",
    "es": "delante detrás cerca entre contra hacia sin junto",
}

_NUMBERS = {
    "en": "zero one two three four five six seven eight nine ten eleven twelve dozen dozens hundred hundreds "
    "thousand thousands first second third",
    "de": "null ein eine zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dutzend hundert tausend "
    "erste zweite dritte",
    "fr": "zéro un une deux trois quatre cinq six sept huit neuf dix onze douze cent mille",
    "es": "cero uno una dos tres cuatro cinco seis siete ocho nueve diez once doce cien mil",
}

# Words that describe the photo rather than what is in it, or a vague amount.
_VAGUE = {
    "en": "photo photos photograph photography picture image view close-up closeup seen see many several "
    "some various lot lots shot",
    "de": "foto fotografie bild aufnahme ansicht nahaufnahme viel viele mehrere einige einig verschiedene verschieden",
    "fr": "photo photographie image vue gros-plan plusieurs nombreux quelques",
    "es": "foto fotografía imagen vista primer-plano varios muchos algunos",
}


def _library_version(name: str) -> str:
    """``importlib.metadata.version(name)``, read straight from the first ``name-*.dist-info/METADATA`` on sys.path.

    Importing importlib.metadata (and the email parser it reads METADATA with) costs a nightly no-op run
    more than its whole plan of thousands of folders; the Version header is one line near the top.
    """
    prefix = name.lower().replace("-", "_") + "-"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip file, a folder that went away
            continue
        for found in names:
            if found.lower().startswith(prefix) and found.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry or ".", found, "METADATA"), encoding="utf-8") as f:
                        for line in f:
                            if line.startswith("Version:"):
                                return line[len("Version:") :].strip()
                            if not line.strip():  # the headers ended
                                break
                except OSError:
                    pass
    from importlib.metadata import PackageNotFoundError, version  # an egg, a zip: the library finds it

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover - both are dependencies
        return "?"


#: Part of the keyword rules' digest: new dictionaries may give new lemmas.
LIBRARY_VERSIONS = {"simplemma": _library_version("simplemma"), "stopwords": _library_version("stopwords")}

# simplemma caches dictionaries in module-level state; loading one from two threads at once is wasted work.
_LEMMA_LOCK = threading.Lock()


def language_code(locale: str | None) -> str:
    """The language part of a locale: ``en-US`` -> ``en``, ``pt_BR`` -> ``pt``; empty -> ``en``."""
    code = (locale or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return code or "en"


class Language:
    """The word lists and lemmatiser of one language."""

    def __init__(self, code: str) -> None:
        import simplemma
        import stopwords as _stopwords

        self.code = code
        words = {w.strip().lower() for w in _stopwords.safe_get_stopwords(code)}
        words |= set(_MORE_STOP.get(code, "").split())
        self.stop_words = frozenset(w for w in words if w and " " not in w)  # we test single words
        self.number_words = frozenset(_NUMBERS.get(code, "").split())
        self.vague_words = frozenset(_VAGUE.get(code, "").split())
        self._filler = self.stop_words | self.number_words | self.vague_words
        self.lemmatised = True
        self._lemmas: dict[str, str] = {}
        try:
            simplemma.lemmatize("a", lang=code)
        except ValueError:  # simplemma has no dictionary for it: words stay as written
            self.lemmatised = False

    def lemma(self, word: str) -> str:
        """The dictionary form of ``word`` (``dogs`` -> ``dog``, ``Hunde`` -> ``Hund``), or the word itself."""
        lemma = self._lemmas.get(word)
        if lemma is not None:
            return lemma
        if not self.lemmatised or not word or any(ch.isdigit() for ch in word):
            lemma = word  # simplemma spells "1990s" as "nineteen-nineties"
        else:
            import simplemma  # imported by __init__: a dictionary lookup

            with _LEMMA_LOCK:
                lemma = simplemma.lemmatize(word, lang=self.code)
            if len(self._lemmas) < 200_000:  # captions repeat their words; bound the memory all the same
                self._lemmas[word] = lemma
        return lemma

    def is_filler(self, word: str, lemma: str) -> bool:
        """True for stop words, number words and vague words, by the written form or the lemma."""
        return word.casefold() in self._filler or lemma.casefold() in self._filler

    def is_function(self, word: str) -> bool:
        """True for a stop word or number word: never a keyword on its own, even in a vocabulary."""
        w = word.casefold()
        return w in self.stop_words or w in self.number_words

    def is_stop(self, word: str) -> bool:
        """True for a stop, number or vague word (the words a name does not start or end with)."""
        return self.is_function(word) or word.casefold() in self.vague_words


@lru_cache(maxsize=16)
def language(code: str) -> Language:
    """The ``Language`` for an ISO 639-1 code (loaded once per process)."""
    return Language(code)
