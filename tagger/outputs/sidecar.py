"""XMP sidecars: write captions and keywords where every photo app reads them, and undo it.

SidecarError            a sidecar exists but cannot be read, parsed or written;
                        the file is left exactly as it was.

``write_sidecar`` merges into what is there: the user's keywords are never
removed, a caption the user wrote is never replaced, everything tagger does
not manage stays as it was. What tagger added is recorded in its own
namespace (``tagger:``, ``https://tagger.invalid/ns/1.0/``) so that a re-run
replaces only its own keywords and ``strip_sidecar`` removes exactly them.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime

from tagger.outputs import xmp as _xmp
from tagger.errors import SidecarError
from tagger.atomic import atomic_write, fsync_dir
from tagger.display import display, utc_stamp
from tagger.outputs.naming import clear_listing_cache, folder_listing, sidecar_path_for
from tagger.outputs.xmp import DC, DIGIKAM, IPTC_CORE, LR, RDF, TAGGER, XMP, Packet
from tagger.outputs.keywords import clean_keyword, clean_keywords

__all__ = [
    "SidecarContent",
    "SidecarError",
    "sidecar_path_for",
    "clear_listing_cache",
    "write_sidecar",
    "strip_sidecar",
    "ALT_TEXT_LIMIT",
]

#: IPTC 2021.1 caps Alt Text (Accessibility) at 250 characters.
ALT_TEXT_LIMIT = 250

_DESCRIPTION = f"{{{DC}}}description"
_ALT_TEXT = f"{{{IPTC_CORE}}}AltTextAccessibility"
_SUBJECT = f"{{{DC}}}subject"
_HIERARCHICAL = f"{{{LR}}}hierarchicalSubject"
_TAGS = f"{{{DIGIKAM}}}TagsList"
_METADATA_DATE = f"{{{XMP}}}MetadataDate"
_MANAGED = (_DESCRIPTION, _ALT_TEXT, _SUBJECT, _HIERARCHICAL, _TAGS, _METADATA_DATE)
# Provenance, in the order written; Bag-valued ones are listed in _PROV_BAGS.
_PROV_FIELDS = (
    "endpoint", "token", "status", "reason", "flags", "date", "caption",
    "descriptionWritten", "altTextWritten", "createdFile",
    "addedSubject", "addedHierarchicalSubject", "addedTagsList",
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PROV_BAGS = frozenset({"flags", "addedSubject", "addedHierarchicalSubject", "addedTagsList"})

Prov = dict[str, "str | tuple[str, ...]"]


@dataclass(frozen=True)
class SidecarContent:
    """What one settled image contributes to its sidecar."""

    caption: str
    keywords: tuple[str, ...]
    token: str
    endpoint: str
    status: str
    reason: str | None = None
    flags: tuple[str, ...] = ()
    settled_at: str = ""
    #: Hierarchies for lr:hierarchicalSubject (``|``) and digiKam:TagsList (``/``), written as given;
    #: None: each keyword under ``hierarchy_parent``.
    paths: tuple[tuple[str, ...], ...] | None = None


@dataclass
class _State:
    description: list[tuple[str, str]]
    alt_text: list[tuple[str, str]]
    subject: list[str]
    hierarchical: list[str]
    tags: list[str]
    prov: Prov


# --- reading -----------------------------------------------------------------


def _load(path: str) -> tuple[Packet, bool]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return _xmp.new_packet(), False
    except OSError as exc:
        raise SidecarError(f"{display(path)}: cannot read ({exc.strerror or exc})") from None
    try:
        return _xmp.parse(data), True
    except _xmp.XmpFormatError as exc:
        raise SidecarError(f"{display(path)}: {exc}; left as it was") from None


def _alt(packet: Packet, name: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for lang, text in _xmp.property_items(packet, name):
        # A language-less value (sloppy writers) counts as x-default.
        seen.setdefault(lang or "x-default", text)
    default = [("x-default", seen.pop("x-default"))] if "x-default" in seen else []
    return default + list(seen.items())


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _values(packet: Packet, name: str) -> list[str]:
    return _unique(text for _, text in _xmp.property_items(packet, name))


def _read_prov(packet: Packet) -> Prov:
    prov: Prov = {}
    for name in _tagger_names(packet):
        local = name.split("}", 1)[1]
        values = _values(packet, name)
        prov[local] = tuple(values) if local in _PROV_BAGS else (values[0] if values else "")
    return prov


def _tagger_names(packet: Packet) -> list[str]:
    prefix = f"{{{TAGGER}}}"
    names: list[str] = []
    for desc in _xmp.descriptions(packet):
        names += [k for k in desc.attrib if k.startswith(prefix)]
        names += [c.tag for c in desc if isinstance(c.tag, str) and c.tag.startswith(prefix)]
    return _unique(names)


def _read(packet: Packet) -> _State:
    return _State(
        _alt(packet, _DESCRIPTION), _alt(packet, _ALT_TEXT), _values(packet, _SUBJECT),
        _values(packet, _HIERARCHICAL), _values(packet, _TAGS), _read_prov(packet),
    )


# --- deciding ----------------------------------------------------------------


def _clean_text(text: str | None) -> str:
    """NFC text with line breaks as LF and no control characters but tab and LF."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    # Exiv2 turns DEL and C1 controls into spaces, so they would never read back the same.
    text = _CONTROLS.sub("", _xmp.xml_safe(text))
    # Drop characters before composing: removing one afterwards could undo NFC.
    return unicodedata.normalize("NFC", text).strip()


def _alt_text_of(caption: str) -> str:
    """The caption cut to ALT_TEXT_LIMIT characters at a word boundary."""
    if len(caption) <= ALT_TEXT_LIMIT:
        return caption
    head = caption[: ALT_TEXT_LIMIT + 1]
    space = max(head.rfind(" "), head.rfind("\n"))
    cut = caption[:space] if space > 0 else caption[:ALT_TEXT_LIMIT]
    return cut.rstrip(" \n,;:-")


def _x_default(items: list[tuple[str, str]]) -> str:
    return dict(items).get("x-default", "")


def _with_x_default(items: list[tuple[str, str]], text: str) -> list[tuple[str, str]]:
    others = [item for item in items if item[0] != "x-default"]
    return ([("x-default", text)] if text else []) + others


def _key(value: str) -> str:
    return unicodedata.normalize("NFC", value).casefold()


def _merge(existing: list[str], previously_added: Iterable[str], ours: list[str]) -> tuple[list[str], list[str]]:
    """(merged, added): the user's values first, then ours they do not already have."""
    previous = set(previously_added)
    user = [v for v in existing if v not in previous]
    have = {_key(v) for v in user}
    added = [v for v in ours if _key(v) not in have]
    return user + added, added


def _parents(hierarchy_parent: str) -> tuple[str, str]:
    parts = clean_keywords(hierarchy_parent.replace("/", "|").split("|"))
    return "|".join(parts), "/".join(parts)


def _owned(prov: Prov, flag: str, current: str, written: str) -> bool:
    return prov.get(flag) == "True" and current == written


def _decide(old: _State, content: SidecarContent, existed: bool, hierarchy_parent: str) -> _State:
    caption = _clean_text(content.caption)
    prev_caption = str(old.prov.get("caption", ""))
    new = _State(old.description, old.alt_text, [], [], [], {})

    current = _x_default(old.description)
    desc_ours = not current.strip() or _owned(old.prov, "descriptionWritten", current, prev_caption)
    if desc_ours:
        new.description = _with_x_default(old.description, caption)
    current_alt = _x_default(old.alt_text)
    alt_ours = not current_alt.strip() or _owned(old.prov, "altTextWritten", current_alt, _alt_text_of(prev_caption))
    if alt_ours:
        new.alt_text = _with_x_default(old.alt_text, _alt_text_of(caption))

    ours = [_xmp.xml_safe(k) for k in clean_keywords(content.keywords)]
    ours = [k for k in ours if k]
    parent_h, parent_t = _parents(hierarchy_parent)
    prov = old.prov
    new.subject, added_s = _merge(old.subject, prov.get("addedSubject", ()), ours)
    if content.paths is None:
        ours_h = [f"{parent_h}|{k}" if parent_h else k for k in ours]
        ours_t = [f"{parent_t}/{k}" if parent_t else k for k in ours]
    else:
        paths = [[c for c in (_xmp.xml_safe(clean_keyword(x)) for x in p) if c] for p in content.paths]
        ours_h = _unique("|".join(p) for p in paths if p)
        ours_t = _unique("/".join(p) for p in paths if p)
    new.hierarchical, added_h = _merge(old.hierarchical, prov.get("addedHierarchicalSubject", ()), ours_h)
    new.tags, added_t = _merge(old.tags, prov.get("addedTagsList", ()), ours_t)

    created = prov.get("createdFile") or ("False" if existed else "True")
    fields: dict[str, str | tuple[str, ...] | None] = {
        "endpoint": _clean_text(content.endpoint),
        "token": _clean_text(content.token),
        "status": _clean_text(content.status),
        "reason": _clean_text(content.reason) if content.reason is not None else None,
        "flags": tuple(f for f in (_clean_text(x) for x in content.flags) if f),
        "date": _clean_text(content.settled_at),
        "caption": caption,
        "descriptionWritten": str(desc_ours and bool(caption)),
        "altTextWritten": str(alt_ours and bool(caption)),
        "createdFile": created,
        "addedSubject": tuple(added_s),
        "addedHierarchicalSubject": tuple(added_h),
        "addedTagsList": tuple(added_t),
    }
    new.prov = {k: v for k, v in fields.items() if v not in (None, "", ())}
    return new


# --- writing -----------------------------------------------------------------


def _apply(packet: Packet, state: _State, metadata_date: str | None) -> None:
    """Replace every copy of the managed properties with one Description holding ``state``."""
    for name in (*_MANAGED, *_tagger_names(packet)):
        _xmp.remove_property(packet, name)
    for element, declared in packet.decls.items():
        # tagger's namespace goes with its last property; nothing else can use it.
        if any(uri == TAGGER for _, uri in declared):
            packet.decls[element] = [(p, u) for p, u in declared if u != TAGGER]
    props: list[tuple[str, str, list[tuple[str | None, str]]]] = []
    for name, kind, items in (
        (_DESCRIPTION, "Alt", list(state.description)),
        (_ALT_TEXT, "Alt", list(state.alt_text)),
        (_SUBJECT, "Bag", [(None, v) for v in state.subject]),
        (_HIERARCHICAL, "Bag", [(None, v) for v in state.hierarchical]),
        (_TAGS, "Seq", [(None, v) for v in state.tags]),
        (_METADATA_DATE, "", [(None, metadata_date or "")]),
    ):
        if any(text for _, text in items):
            props.append((name, kind, items))
    for local in _PROV_FIELDS:
        value = state.prov.get(local)
        if isinstance(value, tuple):
            props.append((f"{{{TAGGER}}}{local}", "Bag", [(None, v) for v in value]))
        elif value:
            props.append((f"{{{TAGGER}}}{local}", "", [(None, value)]))
    if props:
        _xmp.append_description(packet, props)


def _atomic_write(path: str, data: bytes, mode: int | None) -> None:
    try:
        folder = os.path.dirname(path) or os.curdir
        os.makedirs(folder, exist_ok=True)
        atomic_write(path, lambda f: f.write(data), mode=mode, listing=folder_listing(folder))
    except OSError as exc:
        raise SidecarError(f"{display(path)}: cannot write ({exc.strerror or exc})") from None


def _target(path: str) -> str:
    # Replacing a symlink would cut it; write through it instead.
    return os.path.realpath(path) if os.path.islink(path) else path


def _mode(path: str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _encode(packet: Packet, path: str) -> bytes:
    data = _xmp.serialise(packet).encode("utf-8")
    try:
        _xmp.parse(data)  # never replace a good file with one we cannot read back
    except _xmp.XmpFormatError as exc:
        raise SidecarError(f"{display(path)}: refusing to write a broken packet ({exc})") from None
    return data


def write_sidecar(
    path: str,
    content: SidecarContent,
    *,
    hierarchy_parent: str = "CloudSight",
    now: datetime | None = None,
) -> bool:
    """Create or merge the sidecar at ``path``; False when nothing changed (file not touched)."""
    target = _target(path)
    packet, existed = _load(target)
    old = _read(packet)
    new = _decide(old, content, existed, hierarchy_parent)
    if new == old:
        return False
    _apply(packet, new, utc_stamp(now))
    _atomic_write(target, _encode(packet, path), _mode(target))
    return True


def _leaves_nothing(packet: Packet) -> bool:
    for child in packet.rdf:
        if child.tag != f"{{{RDF}}}Description":
            return False
        if set(child.attrib) - {f"{{{RDF}}}about", _METADATA_DATE}:
            return False
        if any(c.tag != _METADATA_DATE for c in child):
            return False
    return True


def strip_sidecar(path: str) -> str:
    """Undo what tagger wrote: "unchanged", "updated", "deleted" (tagger created it) or "absent"."""
    target = _target(path)
    if not os.path.lexists(target):
        return "absent"
    packet, _ = _load(target)
    old = _read(packet)
    prov = old.prov
    if not prov:
        return "unchanged"
    new = _State(old.description, old.alt_text, [], [], [], {})
    caption = str(prov.get("caption", ""))
    if _owned(prov, "descriptionWritten", _x_default(old.description), caption):
        new.description = _with_x_default(old.description, "")
    if _owned(prov, "altTextWritten", _x_default(old.alt_text), _alt_text_of(caption)):
        new.alt_text = _with_x_default(old.alt_text, "")
    new.subject = _merge(old.subject, prov.get("addedSubject", ()), [])[0]
    new.hierarchical = _merge(old.hierarchical, prov.get("addedHierarchicalSubject", ()), [])[0]
    new.tags = _merge(old.tags, prov.get("addedTagsList", ()), [])[0]
    dates = _values(packet, _METADATA_DATE)
    _apply(packet, new, dates[0] if dates else None)
    if prov.get("createdFile") == "True" and _leaves_nothing(packet):
        try:
            os.unlink(target)
        except OSError as exc:
            raise SidecarError(f"{display(path)}: cannot delete ({exc.strerror or exc})") from None
        fsync_dir(os.path.dirname(target) or os.curdir)
        return "deleted"
    _atomic_write(target, _encode(packet, path), _mode(target))
    return "updated"
