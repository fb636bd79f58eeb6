"""The user's keyword tree, read from a Lightroom export, a CSV thesaurus or a digiKam tag list.

VocabularyError     the file cannot be read or makes no sense; the run does not start.

Formats (detected from the content, ``.csv`` by its extension or header):

- Lightroom Classic "Export Keywords": one keyword a line, a child indented
  one tab deeper than its parent, ``{synonym}`` lines under their keyword,
  ``[name]`` for a keyword not included on export (private).
- CSV thesaurus: a header with ``path`` (``Animals|Mammals|Cat``) and
  optionally ``synonyms`` (``kitty; kitten``).
- digiKam tag list: one ``Animals/Mammals/Cat`` path a line.

Every node of the tree is a keyword: ``Animals|Mammals|Cat`` also makes
``Animals`` and ``Animals|Mammals`` matchable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from tagger.errors import UsageError
from tagger.keywords.derive import clean_keyword

__all__ = ["Term", "Vocabulary", "VocabularyError", "load_vocabulary", "parse_vocabulary"]


class VocabularyError(UsageError):
    """The vocabulary file cannot be used."""


@dataclass(frozen=True)
class Term:
    """One node of the keyword tree."""

    path: tuple[str, ...]
    #: Per component: marked private (Lightroom ``[brackets]``: not included on export).
    private: tuple[bool, ...]
    synonyms: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The keyword itself (the last component)."""
        return self.path[-1]


@dataclass(frozen=True)
class Vocabulary:
    """A parsed keyword tree; ``kind`` is ``lightroom``, ``csv`` or ``digikam``."""

    kind: str
    terms: tuple[Term, ...]
    source: str = field(default="", compare=False)

    @cached_property
    def digest(self) -> str:
        """A hash of what matching depends on (not of the file's bytes: re-saving changes nothing)."""
        body = [self.kind, [[list(t.path), list(t.private), list(t.synonyms)] for t in self.terms]]
        return hashlib.sha256(json.dumps(body, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


class _Tree:
    """Terms in first-seen order, one per path; synonyms merged."""

    def __init__(self) -> None:
        self.terms: dict[tuple[str, ...], Term] = {}

    def add(self, path: list[str], private: list[bool], synonyms: Sequence[str] = ()) -> None:
        for depth in range(1, len(path) + 1):
            key = tuple(path[:depth])
            last = depth == len(path)
            old = self.terms.get(key)
            syns = tuple(synonyms) if last else ()
            if old is None:
                self.terms[key] = Term(key, tuple(private[:depth]), syns)
            elif syns:
                merged = tuple(dict.fromkeys(old.synonyms + syns))
                self.terms[key] = Term(key, old.private, merged)

    def freeze(self, kind: str, source: str) -> Vocabulary:
        return Vocabulary(kind, tuple(self.terms.values()), source)


def _name(text: str) -> tuple[str, bool]:
    """A Lightroom line's keyword and whether it is bracketed (private)."""
    text = text.strip()
    if len(text) > 2 and text.startswith("[") and text.endswith("]"):
        return clean_keyword(text[1:-1]), True
    return clean_keyword(text), False


def _lightroom(lines: list[str], source: str) -> Vocabulary:
    tree = _Tree()
    stack: list[tuple[str, bool]] = []  # the current path, one (name, private) per depth
    synonyms: dict[tuple[str, ...], list[str]] = {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        depth = len(raw) - len(raw.lstrip("\t"))
        text = raw.strip()
        if text.startswith("{") and text.endswith("}"):
            if not stack:
                raise VocabularyError(f"{source}, line {number}: a synonym {text} before any keyword")
            # A synonym belongs to the keyword one level up (Lightroom indents it like a child).
            owner = stack[: max(1, min(depth, len(stack)))]
            synonyms.setdefault(tuple(n for n, _ in owner), []).append(clean_keyword(text[1:-1]))
            continue
        depth = min(depth, len(stack))  # a jump of two tabs hangs under the deepest parent there is
        name, private = _name(text)
        if not name:
            continue
        stack[depth:] = [(name, private)]
        tree.add([n for n, _ in stack], [p for _, p in stack])
    for path, syns in synonyms.items():
        term = tree.terms[path]
        tree.add(list(path), list(term.private), [s for s in syns if s])
    return tree.freeze("lightroom", source)


def _split(text: str, sep: str) -> list[str]:
    return [p for p in (clean_keyword(x) for x in text.split(sep)) if p]


def _csv(text: str, source: str) -> Vocabulary:
    reader = csv.DictReader(io.StringIO(text))
    fields = {(f or "").strip().lower(): f for f in reader.fieldnames or ()}
    if "path" not in fields:
        raise VocabularyError(
            f"{source}: a CSV thesaurus needs a 'path' column (and optionally 'synonyms'); found {sorted(fields)}"
        )
    tree = _Tree()
    for row in reader:
        path = _split(row.get(fields["path"]) or "", "|")
        if not path:
            continue
        syns = _split(row.get(fields["synonyms"]) or "", ";") if "synonyms" in fields else []
        tree.add(path, [False] * len(path), syns)
    return tree.freeze("csv", source)


def _digikam(lines: list[str], source: str) -> Vocabulary:
    tree = _Tree()
    for raw in lines:
        path = _split(raw.strip(), "/")
        if path:
            tree.add(path, [False] * len(path))
    return tree.freeze("digikam", source)


def parse_vocabulary(text: str, source: str = "vocabulary") -> Vocabulary:
    """Parse a vocabulary, telling the format from its name and content."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    header = [c.strip().lower() for c in first.split(",")]
    if source.lower().endswith(".csv") or ("path" in header and len(header) > 1):
        return _csv(text, source)
    for line in lines:
        stripped = line.strip()
        if line.startswith("\t") or (stripped[:1], stripped[-1:]) in (("{", "}"), ("[", "]")):
            return _lightroom(lines, source)
    if any("/" in line for line in lines):
        return _digikam(lines, source)
    return _lightroom(lines, source)  # a flat list: top-level keywords either way


def load_vocabulary(path: str) -> Vocabulary:
    """Read and parse the vocabulary file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise VocabularyError(f"cannot read the vocabulary {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Lightroom on Windows may write UTF-16
            text = data.decode("utf-16")
        else:
            raise VocabularyError(f"{path}: not UTF-8 text") from None
    vocabulary = parse_vocabulary(text, os.fspath(path))
    if not vocabulary.terms:
        raise VocabularyError(f"{path}: holds no keywords")
    return vocabulary
