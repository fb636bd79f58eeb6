"""Keywords from captions: the words that carry meaning, in the user's vocabulary where there is one.

Cleaning (the same for every writer): Unicode NFC, whitespace collapsed and
trimmed, control characters dropped, ``|`` and ``/`` replaced by a space
(they are hierarchy separators in ``lr:hierarchicalSubject`` and
``digiKam:TagsList``), duplicates dropped case-insensitively keeping the first
spelling, order kept.

Deriving (``derive``): the caption is cut into clauses at punctuation. With a
vocabulary, the longest run of words whose lemmas (or written forms) spell a
keyword or one of its synonyms matches first ("fire hydrants" finds
``Fire Hydrant`` before ``Fire``). What is left becomes keywords of its own:
a run of capitalised words is one name ("Golden Gate Bridge"); other words
become their lemma, minus the language's stop words, number words and vague
words ("photo", "view", "many"). Categories follow the caption.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # vocabulary.py imports this module's cleaning
    from tagger.keywords.vocabulary import Term, Vocabulary

__all__ = ["Keywords", "KeywordRules", "derive", "keywords_from", "clean_keyword", "clean_keywords", "UNMAPPED"]

#: What ``[keywords] unmapped`` may say: keep words the vocabulary lacks (under ``keyword_parent``) or drop them.
UNMAPPED = ("keep", "drop")

#: Bumped whenever the derivation changes, so every stored derivation is redone (for no credit).
RULES_VERSION = 2

# A word: letters/digits, with inner apostrophes or hyphens ("black-and-white", "o'clock").
_WORD = re.compile(r"[^\W_](?:[\w'\u2019-]*[^\W_])?")
_POSSESSIVE = re.compile(r"['\u2019]s$")
_SEPARATORS = re.compile(r"[|/]")
_SENTENCE_END = re.compile(r"[.!?:;]")


_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc
_UNPAIRED = re.compile("[\ud800-\udfff\ufffe\uffff]")


def _drop_unwritable(text: str) -> str:
    # Controls become spaces; surrogates (undecodable file-name bytes) and U+FFFE/F vanish.
    return _UNPAIRED.sub("", _CONTROLS.sub(" ", text))


def clean_keyword(word: str) -> str:
    """One keyword (or one component of a path): NFC, trimmed, separators and controls replaced."""
    text = unicodedata.normalize("NFC", _drop_unwritable(str(word)))
    return " ".join(_SEPARATORS.sub(" ", text).split())


def clean_keywords(words: Iterable[str]) -> list[str]:
    """NFC, trimmed, separators replaced, deduplicated case-insensitively; first spelling and order kept."""
    seen: set[str] = set()
    result: list[str] = []
    for word in words:
        if word is None:
            continue
        text = clean_keyword(word)
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            result.append(text)
    return result


def _clean_path(path: Iterable[str]) -> tuple[str, ...]:
    return tuple(p for p in (clean_keyword(x) for x in path) if p)


@dataclass(frozen=True)
class KeywordRules:
    """Everything a derivation depends on besides the caption."""

    vocabulary: Vocabulary | None = None
    unmapped: str = "keep"
    language: str = "en"
    parent: str = "CloudSight"

    @cached_property
    def parent_path(self) -> tuple[str, ...]:
        """``keyword_parent`` as path components (``AI|Cloud/Sight`` -> ``("AI", "Cloud", "Sight")``)."""
        return tuple(clean_keywords(self.parent.replace("/", "|").split("|")))

    @cached_property
    def digest(self) -> str:
        """Changes whenever a stored derivation may no longer be what these rules give."""
        from tagger.keywords.language import LIBRARY_VERSIONS

        body = [
            RULES_VERSION,
            self.language,
            self.unmapped,
            list(self.parent_path),
            self.vocabulary.digest if self.vocabulary else None,
            LIBRARY_VERSIONS,
        ]
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()[:16]

    @cached_property
    def matcher(self) -> _Matcher | None:
        """The vocabulary indexed for this language (built once: it lemmatises every term)."""
        from tagger.keywords.language import language

        return _Matcher(self.vocabulary, language(self.language)) if self.vocabulary else None


@dataclass(frozen=True)
class Keywords:
    """One caption's keywords, per field."""

    #: ``dc:subject``: matched keywords (for Lightroom, with their exported ancestors) and kept words.
    subject: tuple[str, ...] = ()
    #: Hierarchies for ``lr:hierarchicalSubject`` (joined by ``|``) and ``digiKam:TagsList`` (``/``).
    paths: tuple[tuple[str, ...], ...] = ()
    #: Words the vocabulary does not hold (every word when there is no vocabulary), kept or not.
    unmapped: tuple[str, ...] = ()

    def to_json(self) -> tuple[str, str, str]:
        """(subject, paths, unmapped) as JSON text for the ledger."""
        dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731
        return dump(list(self.subject)), dump([list(p) for p in self.paths]), dump(list(self.unmapped))


@dataclass
class _Word:
    text: str
    initial: bool  # first word of a sentence: its capital says nothing
    parts: list[str] = field(default_factory=list)
    used: list[bool] = field(default_factory=list)


def _clauses(text: str) -> list[list[_Word]]:
    """Words grouped into clauses: a phrase never spans punctuation ("sky, Hubble")."""
    clauses: list[list[_Word]] = []
    current: list[_Word] = []
    pos, initial = 0, True
    for match in _WORD.finditer(text):
        gap = text[pos : match.start()]
        if current and gap.strip():
            clauses.append(current)
            current = []
        if _SENTENCE_END.search(gap):
            initial = True
        word = _POSSESSIVE.sub("", match.group())
        parts = [p for p in word.split("-") if p]
        current.append(_Word(word, initial, parts, [False] * len(parts)))
        initial = False
        pos = match.end()
    if current:
        clauses.append(current)
    return clauses


class _Matcher:
    """The vocabulary indexed by the lemma keys and written keys of every name and synonym."""

    def __init__(self, vocabulary: Vocabulary | None, lang) -> None:
        self.lang = lang
        self.index: dict[tuple[str, ...], list[Term]] = {}
        self.longest = 0
        for term in vocabulary.terms if vocabulary else ():
            for phrase in (term.name, *term.synonyms):
                parts = [p for w in _WORD.findall(unicodedata.normalize("NFC", phrase)) for p in w.split("-") if p]
                if not parts:
                    continue
                for key in {self.lemma_key(parts), self.surface_key(parts)}:
                    bucket = self.index.setdefault(key, [])
                    if term not in bucket:
                        bucket.append(term)
                self.longest = max(self.longest, len(parts))

    def lemma_key(self, parts: list[str]) -> tuple[str, ...]:
        return tuple(self.lang.lemma(p.lower()).casefold() for p in parts)

    @staticmethod
    def surface_key(parts: list[str]) -> tuple[str, ...]:
        return tuple(p.casefold() for p in parts)

    def match(self, clause: list[_Word]) -> list[tuple[int, list[Term]]]:
        """(word index, terms) of each longest match, left to right; marks the parts used."""
        tokens = [(i, j) for i, w in enumerate(clause) for j in range(len(w.parts))]
        parts = [clause[i].parts[j] for i, j in tokens]
        lemmas, surfaces = self.lemma_key(parts), self.surface_key(parts)
        found: list[tuple[int, list[Term]]] = []
        k = 0
        while k < len(tokens) and self.index:
            for n in range(min(self.longest, len(tokens) - k), 0, -1):
                span = tokens[k : k + n]
                if n == 1 and self.lang.is_function(parts[k]):
                    continue  # "in", "ein" never match a keyword alone (a vague word may: "Close-up" is a technique)
                terms = self.index.get(lemmas[k : k + n]) or self.index.get(surfaces[k : k + n])
                if terms:
                    for i, j in span:
                        clause[i].used[j] = True
                    found.append((span[0][0], terms))
                    k += n
                    break
            else:
                k += 1
        return found


def _capitalised(word: str) -> bool:
    return word[:1].isupper()


def _leftovers(clause: list[_Word], lang) -> list[tuple[int, str]]:
    """(word index, keyword) of the words no keyword matched: names whole, other words as lemmas."""
    out: list[tuple[int, str]] = []
    free = [not any(w.used) for w in clause]

    def single(k: int) -> None:
        word = clause[k]
        if free[k]:
            keyword = _plain(word.text, _capitalised(word.text) and not word.initial, lang)
            out.extend([(k, keyword)] if keyword else [])
        else:  # part of a hyphenated word matched: what is left counts part by part
            out.extend(
                (k, kw) for j, p in enumerate(word.parts) if not word.used[j] for kw in [_plain(p, False, lang)] if kw
            )

    i = 0
    while i < len(clause):
        end = i
        while end < len(clause) and free[end] and _capitalised(clause[end].text):
            end += 1
        if end - i < 2:
            single(i)
            i += 1
            continue
        start, run = i, clause[i:end]
        while run and lang.is_stop(run[0].text):  # "The Golden Gate Bridge", "Zwei Hunde"
            start, run = start + 1, run[1:]
        while run and lang.is_stop(run[-1].text):
            run = run[:-1]
        if len(run) >= 2:
            out.append((start, " ".join(w.text for w in run)))
        else:
            for k in range(i, end):
                single(k)
        i = end
    return out


def _plain(word: str, name: bool, lang) -> str:
    """A single word as a keyword: its lemma (a capitalised word mid-sentence keeps its case), or '' for filler."""
    if len(word) <= 1 or word.isdigit():
        return ""
    lemma = lang.lemma(word if name else word.lower())
    return "" if lang.is_filler(word, lemma) else lemma


def _subject_of(term: Term, kind: str) -> list[str]:
    if kind != "lightroom":
        return [term.name]
    # Lightroom exports a keyword with its containing keywords, except those marked [private].
    return [name for name, private in reversed(list(zip(term.path, term.private, strict=True))) if not private]


def derive(caption: str | None, categories: Iterable[str] = (), rules: KeywordRules | None = None) -> Keywords:
    """The keywords of one caption under ``rules`` (default: no vocabulary, English)."""
    from tagger.keywords.language import language

    rules = rules or KeywordRules()
    lang = language(rules.language)
    matcher = rules.matcher
    items: list[tuple[tuple[int, int], str | list[Term]]] = []
    text = unicodedata.normalize("NFC", _drop_unwritable(caption or ""))
    # Each item is keyed by (clause, word) so matches and leftover words keep the caption's order.
    clauses = _clauses(text)
    for c, clause in enumerate(clauses):
        if matcher:
            items += [((c, i), terms) for i, terms in matcher.match(clause)]
        items += [((c, i), word) for i, word in _leftovers(clause, lang)]
    for n, category in enumerate((x for x in categories if x is not None), len(clauses)):
        cat = clean_keyword(category)
        parts = _clauses(cat)
        matched = [m for cl in parts for m in matcher.match(cl)] if matcher else []
        if matched:
            items += [((n, i), terms) for i, terms in matched]
            items += [((n, i), w) for cl in parts for i, w in _leftovers(cl, lang)]
        elif cat:  # a category the vocabulary lacks stays whole, as the service spelled it
            items.append(((n, 0), cat.lower()))
    items.sort(key=lambda item: item[0])

    kind = rules.vocabulary.kind if rules.vocabulary else ""
    keep = rules.vocabulary is None or rules.unmapped != "drop"
    subject: list[str] = []
    paths: dict[tuple[str, ...], tuple[str, ...]] = {}
    unmapped: list[str] = []
    for _, item in items:
        if isinstance(item, str):
            unmapped.append(item)
            if keep:
                subject.append(item)
                path = _clean_path((*rules.parent_path, item))
                paths.setdefault(tuple(p.casefold() for p in path), path)
        else:
            for term in item:
                subject += _subject_of(term, kind)
                path = _clean_path(term.path)
                paths.setdefault(tuple(p.casefold() for p in path), path)
    return Keywords(tuple(clean_keywords(subject)), tuple(paths.values()), tuple(clean_keywords(unmapped)))


def keywords_from(caption: str | None, categories: Iterable[str] = (), language: str = "en") -> list[str]:
    """The ``dc:subject`` keywords of a caption without a vocabulary."""
    return list(derive(caption, categories, KeywordRules(language=language)).subject)
