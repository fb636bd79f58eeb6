"""CSV and JSONL exports of the ledger's records, shaped for spreadsheets and DAM importers.

Each :class:`Profile` names its columns and the CSV dialect its reader
expects: ``default`` and ``excel`` are for people (formula guard on; Excel
also gets a BOM and CRLF), ``resourcespace``, ``canto`` and ``aem`` for those
DAMs' metadata imports, ``exiftool`` for ``exiftool -csv=FILE -sep "; "``,
which embeds the captions into the images themselves. The metadata-import
profiles carry completed rows only: a row without a caption would either do
nothing or blank a field the user filled.

The ``exiftool`` profile reads each photo's own metadata and carries the
sidecar merge's decisions (``tagger.sidecars.embed``): an empty cell where the
photo's own description stands (exiftool then leaves it), the photo's
keywords followed by tagger's (exiftool replaces a whole list), nothing for
title, creator or rights. Its ``SourceFile`` is the file's exact name, bytes
that are not UTF-8 included, so exiftool finds the file.

Every cell is quoted (RFC 4180) and every row carries the file's path, so two
``IMG_0001.JPG`` in different folders never get each other's caption.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from tagger.atomic import atomic_text
from tagger.errors import ExportError
from tagger.exports.profile_names import PROFILE_NAMES
from tagger.exports.records import Record

__all__ = ["PROFILES", "Profile", "ExportError", "write_export", "guard_cell", "FORMATS"]

#: Output formats ``write_export`` knows.
FORMATS = ("csv", "jsonl")

#: IPTC's limit for accessibility alt text.
_ALT_TEXT_MAX = 250

_FORMULA_LEADERS = ("=", "+", "-", "@", "\t", "\r", "\n")

Cell = Callable[[Record, dict[str, Any]], str]


@dataclass(frozen=True)
class Profile:
    """One CSV layout: its columns, line ends, BOM, formula guard and which rows it keeps."""

    name: str
    columns: tuple[tuple[str, Cell], ...]
    line_end: str = "\n"
    bom: bool = False
    formula_guard: bool = False
    completed_only: bool = False
    description: str = ""
    #: Names written byte for byte (undecodable bytes as themselves, not as UTF-8): for exiftool's matching.
    raw_names: bool = False
    #: Computes, once per row, options its cells read (the photo's own metadata, for the exiftool profile).
    row_options: Callable[[Record], dict[str, Any]] | None = None

    @property
    def headers(self) -> list[str]:
        """The header row."""
        return [name for name, _ in self.columns]


def guard_cell(value: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would run as a formula (OWASP CSV injection)."""
    if value.startswith(_FORMULA_LEADERS):
        return "'" + value
    return value


def _text(value: object) -> str:
    # NUL is not text any reader keeps; the csv module refuses it on some versions.
    return "" if value is None else str(value).replace("\x00", "")


def _join(values: Iterable[str], sep: str) -> str:
    """Join several values, removing the separator from inside each so none splits in two."""
    core = sep.strip() or sep
    cleaned = (" ".join(v.replace(core, " ").split()) for v in values)
    return sep.join(v for v in cleaned if v)


def _field(name: str) -> Cell:
    return lambda r, _o: _text(getattr(r, name))


def _listed(name: str, sep: str) -> Cell:
    return lambda r, _o: _join(getattr(r, name), sep)


def _caption(r: Record, _o: dict[str, Any]) -> str:
    return _text(r.caption)


def _alt_text(r: Record, _o: dict[str, Any]) -> str:
    caption = _text(r.caption)
    if len(caption) <= _ALT_TEXT_MAX:
        return caption
    cut = caption[: _ALT_TEXT_MAX - 1]
    # Cut at a word boundary when one is reasonably near, and say it was cut.
    space = cut.rfind(" ")
    if space > _ALT_TEXT_MAX // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def _forward(relpath: str) -> str:
    # Only the platform's own separator becomes "/": a backslash is a legal character in a POSIX name
    # (and the display spelling of an undecodable byte), never a folder.
    if os.sep != "/":
        relpath = relpath.replace(os.sep, "/")
    return relpath.lstrip("/")


def _aem_path(r: Record, options: dict[str, Any]) -> str:
    root = str(options.get("aem_root", "/content/dam")).rstrip("/")
    return f"{root}/{_forward(r.relpath)}"


def _embedding(r: Record) -> dict[str, Any]:
    from tagger.sidecars.embed import Embedding, embedding_for

    if r.source is None:  # a remote image: nothing on disk to read or embed into
        return {"embed": Embedding(_text(r.caption) or None, tuple(r.keywords) or None, _text(r.caption) or None)}
    return {"embed": embedding_for(os.fsdecode(r.source), _text(r.caption), r.keywords)}


def _source_file(r: Record, _o: dict[str, Any]) -> str:
    # The exact name: undecodable bytes stay lone surrogates, written back as the bytes themselves.
    return os.fsdecode(r.source) if r.source is not None else _text(r.path)


def _embed_text(name: str) -> Cell:
    return lambda _r, o: _text(getattr(o["embed"], name))


def _embed_list(name: str) -> Cell:
    return lambda _r, o: _join(getattr(o["embed"], name) or (), "; ")


def _embed_alt(r: Record, o: dict[str, Any]) -> str:
    return _alt_text(r, o) if o["embed"].alt_text else ""


_DEFAULT_COLUMNS: tuple[tuple[str, Cell], ...] = (
    ("path", lambda r, _o: _forward(_text(r.relpath))),
    ("absolute_path", _field("path")),
    ("filename", _field("filename")),
    ("caption", _caption),
    ("keywords", _listed("keywords", "; ")),
    ("status", _field("status")),
    ("reason", _field("reason")),
    ("flags", _listed("flags", "; ")),
    ("categories", _listed("categories", "; ")),
    ("content_hash", _field("content_hash")),
    ("token", _field("token")),
    ("endpoint", _field("endpoint")),
    ("submitted_at", _field("submitted_at")),
    ("settled_at", _field("settled_at")),
    ("modified_at", _field("modified_at")),
    ("size", _field("size")),
    ("reused_from", _field("reused_from")),
)

PROFILES: dict[str, Profile] = {
    "default": Profile(
        "default",
        _DEFAULT_COLUMNS,
        formula_guard=True,
        description="every field, for people and scripts; formula guard on",
    ),
    "excel": Profile(
        "excel",
        _DEFAULT_COLUMNS,
        line_end="\r\n",
        bom=True,
        formula_guard=True,
        description="every field for Excel: UTF-8 with BOM, CRLF, formula guard on",
    ),
    "resourcespace": Profile(
        "resourcespace",
        (
            ("Original filename", _field("filename")),
            ("Caption", _caption),
            ("Keywords", _listed("keywords", ", ")),
            ("Path", lambda r, _o: _forward(_text(r.relpath))),
        ),
        completed_only=True,
        description="ResourceSpace CSV upload: field-name headers, keywords as a comma list",
    ),
    "canto": Profile(
        "canto",
        (
            ("File Name", _field("filename")),
            ("Description", _caption),
            ("Keywords", _listed("keywords", ";")),
            ("Path", lambda r, _o: _forward(_text(r.relpath))),
        ),
        completed_only=True,
        description="Canto metadata import: first column File Name, several values with ;",
    ),
    "aem": Profile(
        "aem",
        (
            ("assetPath", _aem_path),
            ("dc:title {{String}}", _caption),
            ("dc:description {{String}}", _caption),
            ("dc:subject {{String: MULTI}}", _listed("keywords", "|")),
        ),
        completed_only=True,
        description="AEM Assets metadata import: assetPath under aem_root, typed headers, | between values",
    ),
    "exiftool": Profile(
        "exiftool",
        (
            ("SourceFile", _source_file),
            ("XMP-dc:Description", _embed_text("description")),
            ("XMP-dc:Subject", _embed_list("subject")),
            ("XMP-iptcCore:AltTextAccessibility", _embed_alt),
            ("EXIF:ImageDescription", _embed_text("image_description")),
            ("IPTC:Keywords", _embed_list("iptc_keywords")),
        ),
        completed_only=True,
        description='for exiftool -csv=FILE -sep "; ": embeds captions and keywords, keeping the photo\'s own',
        raw_names=True,
        row_options=_embedding,
    ),
}

if tuple(PROFILES) != PROFILE_NAMES:  # the CLI's help and checks list PROFILE_NAMES without importing this module
    raise ImportError("tagger.exports.profile_names.PROFILE_NAMES must name every profile of PROFILES, in order")

_OPTIONS = frozenset({"aem_root"})


def _csv_rows(records: Iterable[Record], profile: Profile, guard: bool, options: dict[str, Any]) -> Iterator[list[str]]:
    for record in records:
        if profile.completed_only and record.status != "completed":
            continue
        row_options = {**options, **profile.row_options(record)} if profile.row_options else options
        row = [cell(record, row_options) for _, cell in profile.columns]
        yield [guard_cell(v) for v in row] if guard else row


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _write_csv(out: IO[str], records: Iterable[Record], profile: Profile, guard: bool, options: dict[str, Any]) -> int:
    if profile.raw_names and isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="surrogateescape")
    if profile.bom:
        out.write("\ufeff")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=profile.line_end)
    writer.writerow(profile.headers)
    count = 0
    for row in _csv_rows(records, profile, guard, options):
        writer.writerow(row)
        count += 1
    return count


def _write_jsonl(out: IO[str], records: Iterable[Record]) -> int:
    count = 0
    for record in records:
        # ``source`` is bytes, not JSON: ``path`` carries it in the display spelling, which reverses to it.
        obj = {f.name: _json_value(getattr(record, f.name)) for f in dataclasses.fields(record) if f.name != "source"}
        out.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        count += 1
    return count


def write_export(
    records: Iterable[Record],
    dest: str,
    *,
    profile: str = "default",
    fmt: str = "csv",
    formula_guard: bool | None = None,
    **options: Any,
) -> int:
    """Write ``records`` to ``dest`` atomically in ``fmt`` shaped by ``profile``; return rows written.

    Records are streamed, never held. ``formula_guard`` overrides the
    profile's guard (CSV only; JSONL is data, never guarded). ``aem_root``
    (default ``/content/dam``) sets the AEM profile's DAM folder.
    """
    if profile not in PROFILES:
        raise ExportError(f"unknown export profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ExportError(
            f"unknown export {'option' if len(unknown) == 1 else 'options'}: {', '.join(sorted(unknown))}"
        )
    chosen = PROFILES[profile]
    if fmt == "jsonl":
        return _write_to(dest, lambda out: _write_jsonl(out, records))
    guard = chosen.formula_guard if formula_guard is None else formula_guard
    return _write_to(dest, lambda out: _write_csv(out, records, chosen, guard, options))


def _write_to(dest: str, write: Callable[[IO[str]], int]) -> int:
    """``write`` into a file that atomically replaces ``dest``, or into standard output when ``dest`` is ``-``."""
    if dest != "-":
        return atomic_text(dest, write)
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="replace", newline="")
    try:
        n = write(out)
        out.flush()
        return n
    finally:
        out.detach()
