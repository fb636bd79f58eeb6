"""XMP sidecars: write captions and keywords where every photo app reads them, and undo it.

SidecarError            a sidecar exists but cannot be read, parsed or written;
                        the file is left exactly as it was.

Apps that find a sidecar read it instead of the image's own metadata
(darktable, digiKam, Immich field by field). So a sidecar tagger creates
starts as a copy of the image's metadata (``mwg.image_packet``), and a
description the user wrote anywhere (the image, the sidecar, any language)
is never shadowed: tagger's caption then goes only to its own namespace and
the alt text. Where tagger writes a description, the first caption is the
``x-default`` and every later language gets its own ``xml:lang`` (darktable
reads all alternatives as one text, so a copy of x-default under its
language would show twice). Camera boilerplate (``OLYMPUS DIGITAL CAMERA``)
is not a description: tagger writes over it and, when the image carries it
as EXIF ImageDescription, also as ``tiff:ImageDescription`` (Immich shows
that first). A keyword field tagger adds is seeded with the user's keywords
from the other fields, so a reader stopping at it misses none.

Everything tagger did is recorded in its namespace (``tagger:``,
``https://tagger.invalid/ns/1.0/``): ``wrote*``/``replaced*`` hold the texts
it put in each language slot and what boilerplate it replaced, ``added*``
its keywords, ``seeded*`` the copies of the user's keywords in fields tagger
created, ``imageCopy`` a digest of the copy a new sidecar started from.
``strip_sidecar`` removes exactly that (seeded copies included: the user
did not have those fields) and deletes a sidecar tagger created once only
the copy of the image's metadata is left.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from tagger.atomic import TargetChanged, atomic_write, fsync_dir
from tagger.errors import SidecarError
from tagger.outputs import xmp as _xmp
from tagger.prepare.embedded import ImageMetadata, is_boilerplate, read_image_metadata
from tagger.outputs.keywords import clean_keyword, clean_keywords
from tagger.outputs.mwg import image_packet
from tagger.display import display, utc_stamp
from tagger.outputs.naming import clear_listing_cache, folder_listing, sidecar_path_for
from tagger.outputs.xmp import DC, DIGIKAM, IPTC_CORE, LR, RDF, TAGGER, TIFF, XMP, Packet

__all__ = [
    "SidecarContent",
    "SidecarError",
    "sidecar_path_for",
    "clear_listing_cache",
    "write_sidecar",
    "strip_sidecar",
    "read_provenance",
    "sidecar_provenance",
    "parse_sidecar",
    "ALT_TEXT_LIMIT",
]

#: IPTC 2021.1 caps Alt Text (Accessibility) at 250 characters.
ALT_TEXT_LIMIT = 250

_DESCRIPTION = f"{{{DC}}}description"
_ALT_TEXT = f"{{{IPTC_CORE}}}AltTextAccessibility"
_IMAGE_DESCRIPTION = f"{{{TIFF}}}ImageDescription"
_SUBJECT = f"{{{DC}}}subject"
_HIERARCHICAL = f"{{{LR}}}hierarchicalSubject"
_TAGS = f"{{{DIGIKAM}}}TagsList"
_METADATA_DATE = f"{{{XMP}}}MetadataDate"
# Provenance, in the order written; _PROV_BAGS are rdf:Bag, _PROV_ALTS rdf:Alt (language -> text).
# contentHash and categories say which job the caption is (a lost ledger adopts it from here).
_PROV_FIELDS = (
    "endpoint", "token", "status", "reason", "flags", "date", "caption", "contentHash", "categories",
    "locale", "captions", "defaultLang",
    "wroteDescription", "wroteAltText", "wroteImageDescription", "replacedDescription", "replacedImageDescription",
    "createdFile", "imageCopy",
    "addedSubject", "addedHierarchicalSubject", "addedTagsList",
    "seededSubject", "seededHierarchicalSubject", "seededTagsList", "reusedFrom",
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PROV_BAGS = frozenset({
    "flags", "categories", "addedSubject", "addedHierarchicalSubject", "addedTagsList",
    "seededSubject", "seededHierarchicalSubject", "seededTagsList",
})
_PROV_ALTS = frozenset({
    "captions", "wroteDescription", "wroteAltText", "wroteImageDescription",
    "replacedDescription", "replacedImageDescription",
})
#: Bounded re-reads when another app saves the sidecar while tagger merges into it.
MERGE_ATTEMPTS = 5

Alt = tuple[tuple[str, str], ...]
Prov = dict[str, "str | tuple[str, ...] | Alt"]
# (field, property, separator): "" is the flat dc:subject.
_LISTS = (("subject", _SUBJECT, ""), ("hierarchical", _HIERARCHICAL, "|"), ("tags", _TAGS, "/"))
_PROV_LIST = {"subject": "Subject", "hierarchical": "HierarchicalSubject", "tags": "TagsList"}


@dataclass(frozen=True)
class SidecarContent:
    """What one settled image contributes to its sidecar (``locale``: the caption's language)."""

    caption: str
    keywords: tuple[str, ...]
    token: str
    endpoint: str
    status: str
    reason: str | None = None
    flags: tuple[str, ...] = ()
    settled_at: str = ""
    locale: str = "en-US"
    #: Hierarchies for lr:hierarchicalSubject (``|``) and digiKam:TagsList (``/``), written as given;
    #: None: each keyword under ``hierarchy_parent``.
    paths: tuple[tuple[str, ...], ...] | None = None
    content_hash: str = ""  # the ledger's identity of the image content the caption belongs to
    categories: tuple[str, ...] = ()
    reused_from: str | None = None  # path of the similar photo whose caption this is


@dataclass
class _State:
    description: list[tuple[str, str]]
    alt_text: list[tuple[str, str]]
    image_description: list[tuple[str, str]]
    subject: list[str]
    hierarchical: list[str]
    tags: list[str]
    prov: Prov


class _Image:
    """The photo's own metadata, read at most once and only when a decision needs it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._meta: ImageMetadata | None = None
        self._packet: Packet | None = None

    @property
    def meta(self) -> ImageMetadata:
        if self._meta is None:
            self._meta = read_image_metadata(self.path) if self.path else ImageMetadata()
        return self._meta

    def packet(self) -> Packet:
        """A fresh copy each call (callers modify it)."""
        return image_packet(self.meta)

    def state(self) -> _State:
        if self._packet is None:
            self._packet = self.packet()
        return _read(self._packet)

    def has_boilerplate_description(self) -> bool:
        value = self.meta.exif.get("ImageDescription")
        return value is not None and is_boilerplate(value)

    def owner(self) -> tuple[int, int] | None:
        if not self.path:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_uid, st.st_gid


# --- reading -----------------------------------------------------------------


def parse_sidecar(path: str, data: bytes | None) -> Packet:
    """``data`` (a sidecar's bytes, None when absent) as a packet; SidecarError names ``path``."""
    if data is None:
        return _xmp.new_packet()
    try:
        return _xmp.parse(data)
    except _xmp.XmpFormatError as exc:
        raise SidecarError(f"{display(path)}: {exc}; left as it was") from None


def _snapshot(path: str) -> tuple[bytes | None, tuple | None]:
    """The sidecar's bytes and identity (inode, size, mtime, ctime), or (None, None) when absent."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        raise SidecarError(f"{display(path)}: cannot read ({exc.strerror or exc})") from None
    return data, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_uid, st.st_gid, st.st_mode)


_alt = _xmp.lang_alt
_values = _xmp.values


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def read_provenance(packet: Packet) -> Prov:
    """What tagger recorded in a sidecar's ``tagger:`` namespace (older sidecars' fields translated)."""
    prov: Prov = {}
    for name in _tagger_names(packet):
        local = name.split("}", 1)[1]
        if local in _PROV_ALTS:
            prov[local] = tuple(_alt(packet, name))
            continue
        values = _values(packet, name)
        prov[local] = tuple(values) if local in _PROV_BAGS else (values[0] if values else "")
    # Sidecars written before languages: x-default and the alt text were the only slots.
    caption = str(prov.get("caption", ""))
    if prov.pop("descriptionWritten", None) == "True":
        prov.setdefault("wroteDescription", (("x-default", caption),))
    if prov.pop("altTextWritten", None) == "True":
        prov.setdefault("wroteAltText", (("x-default", _alt_text_of(caption)),))
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
        _alt(packet, _DESCRIPTION), _alt(packet, _ALT_TEXT), _alt(packet, _IMAGE_DESCRIPTION),
        _values(packet, _SUBJECT), _values(packet, _HIERARCHICAL), _values(packet, _TAGS), read_provenance(packet),
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


def _key(value: str) -> str:
    return unicodedata.normalize("NFC", value).casefold()


def _alt_dict(prov: Prov, name: str) -> dict[str, str]:
    return dict(prov.get(name, ()))  # type: ignore[arg-type]


def _alt_tuple(values: dict[str, str]) -> Alt:
    """``values`` as an Alt reads back: x-default first, then the languages in order."""
    return tuple(sorted(values.items(), key=lambda item: item[0] != "x-default"))


@dataclass
class _Slots:
    """One language-alternative property after a decision: its items and tagger's part of them."""

    items: list[tuple[str, str]]
    wrote: dict[str, str]
    replaced: dict[str, str]


def _ours_and_users(items: list[tuple[str, str]], wrote: dict[str, str], boilerplate_counts: bool):
    owned = {lang for lang, text in items if wrote.get(lang) == text}
    boiler = {lang for lang, text in items if lang not in owned and boilerplate_counts and is_boilerplate(text)}
    user = [lang for lang, _ in items if lang not in owned and lang not in boiler]
    return owned, boiler, user


def _put(items: list[tuple[str, str]], lang: str, text: str | None) -> list[tuple[str, str]]:
    """``items`` with ``lang`` set to ``text`` (None removes it); x-default kept first, new languages last."""
    out = [(l, t) for l, t in items if l != lang]
    if text is None:
        return out
    if lang == "x-default":
        return [(lang, text)] + out
    if any(l == lang for l, _ in items):
        return [(l, text if l == lang else t) for l, t in items]
    return out + [(lang, text)]


def _decide_alt(items, wrote_prev, replaced_prev, text, lang, default_lang_prev, *, user_elsewhere, boilerplate_counts):
    """Where ``text`` (in language ``lang``) goes among ``items``; returns (_Slots, default language)."""
    owned, boiler, user = _ours_and_users(items, wrote_prev, boilerplate_counts)
    wrote = {l: t for l, t in items if l in owned}
    replaced = {l: t for l, t in replaced_prev.items() if l in owned}
    if user or user_elsewhere:
        # A user's text anywhere: tagger keeps no alternative beside it (readers would show tagger's
        # x-default instead, and darktable joins every language into one text).
        return _Slots([(l, t) for l, t in items if l not in owned], {}, {}), ""
    if not text:
        return _Slots(items, wrote, replaced), (default_lang_prev if "x-default" in owned else "")
    current = dict(items)
    default_lang = default_lang_prev if "x-default" in owned else ""
    if "x-default" not in current or "x-default" in boiler or ("x-default" in owned and default_lang in ("", lang)):
        if "x-default" in boiler:
            replaced["x-default"] = current["x-default"]
        items = _put(items, "x-default", text)
        wrote["x-default"] = text
        default_lang = lang
    if lang == "x-default":
        pass  # no language given: x-default is the caption's only slot
    elif lang != default_lang and (lang not in current or lang in owned or lang in boiler):
        if lang in boiler:
            replaced[lang] = current[lang]
        items = _put(items, lang, text)
        wrote[lang] = text
    elif lang == default_lang and lang in owned:
        items = _put(items, lang, None)  # x-default carries it: no duplicate
        wrote.pop(lang, None)
    return _Slots(items, wrote, replaced), default_lang


def _undo_alt(items, wrote_prev, replaced_prev) -> list[tuple[str, str]]:
    for lang, text in list(items):
        if wrote_prev.get(lang) == text:
            items = _put(items, lang, replaced_prev.get(lang))
    return items


def _split_path(value: str, sep: str) -> list[str]:
    return [p for p in (part.strip() for part in value.split(sep)) if p] if sep else [value]


def _seed(field: str, sources: list[tuple[str, list[str]]], have: set[str]) -> list[str]:
    """The user's keywords from other fields, in ``field``'s form, minus what it already holds."""
    paths = [_split_path(v, sep) for sep, values in sources if sep for v in values]
    flats = [v for sep, values in sources if not sep for v in values]
    covered = {_key(part) for path in paths for part in path}
    sep = dict((f, s) for f, _, s in _LISTS)[field]
    if sep:
        wanted = [sep.join(path) for path in paths] + [f for f in flats if _key(f) not in covered]
    else:
        wanted = [path[-1] for path in paths if path] + flats
    out: list[str] = []
    for value in wanted:
        if value and _key(value) not in have:
            have.add(_key(value))
            out.append(value)
    return out


def _parents(hierarchy_parent: str) -> tuple[str, str]:
    parts = clean_keywords(hierarchy_parent.replace("/", "|").split("|"))
    return "|".join(parts), "/".join(parts)


def _decide_keywords(
    old: _State, new: _State, ours: list[str], hierarchy_parent: str, image: _Image,
    paths: tuple[tuple[str, ...], ...] | None = None,
) -> None:
    prov = old.prov
    if paths is None:  # each keyword under the parent
        parent_h, parent_t = _parents(hierarchy_parent)
        ours_h = [f"{parent_h}|{k}" if parent_h else k for k in ours]
        ours_t = [f"{parent_t}/{k}" if parent_t else k for k in ours]
    else:  # vocabulary paths, written as given
        cleaned = [[c for c in (_xmp.xml_safe(clean_keyword(x)) for x in p) if c] for p in paths]
        ours_h = _unique("|".join(p) for p in cleaned if p)
        ours_t = _unique("/".join(p) for p in cleaned if p)
    ours_by = {"subject": ours, "hierarchical": ours_h, "tags": ours_t}
    own: dict[str, list[str]] = {}
    for field, _, _ in _LISTS:
        tagger_values = set(prov.get(f"added{_PROV_LIST[field]}", ())) | set(prov.get(f"seeded{_PROV_LIST[field]}", ()))
        own[field] = [v for v in getattr(old, field) if v not in tagger_values]
    if any(own.values()):
        pool = {field: own[field] for field in own}
    else:
        # No keyword of the user's in the sidecar: the image's are what readers showed so far.
        img = image.state()
        pool = {"subject": img.subject, "hierarchical": img.hierarchical, "tags": img.tags}
    for field, _, sep in _LISTS:
        have = {_key(v) for v in own[field]}
        seeded: list[str] = []
        if ours_by[field] and (not own[field] or prov.get(f"seeded{_PROV_LIST[field]}")):
            sources = [(s, pool[f]) for f, _, s in _LISTS if f != field and f != "subject"]
            sources.append(("", pool["subject"]) if field != "subject" else ("", []))
            seeded = _seed(field, sources, have)
        added = [v for v in ours_by[field] if _key(v) not in have]
        setattr(new, field, own[field] + seeded + added)
        new.prov[f"added{_PROV_LIST[field]}"] = tuple(added)
        new.prov[f"seeded{_PROV_LIST[field]}"] = tuple(seeded)


def _decide(old: _State, content: SidecarContent, existed: bool, hierarchy_parent: str, image: _Image) -> _State:
    caption = _clean_text(content.caption)
    # xml:lang is a BCP 47 tag: en-US, not en_US.
    lang = _clean_text(content.locale).replace("_", "-") or "x-default"
    prov = old.prov
    new = _State(old.description, old.alt_text, old.image_description, [], [], [], {})

    # A description the user wrote anywhere: in this sidecar (any language) or, when it has none, the image.
    elsewhere = False
    if not old.description:
        img = image.state()
        elsewhere = any(not is_boilerplate(text) for _, text in img.description)
    desc, default_lang = _decide_alt(
        old.description, _alt_dict(prov, "wroteDescription"), _alt_dict(prov, "replacedDescription"),
        caption, lang, str(prov.get("defaultLang", "")), user_elsewhere=elsewhere, boilerplate_counts=True,
    )
    alt, _ = _decide_alt(
        old.alt_text, _alt_dict(prov, "wroteAltText"), {}, _alt_text_of(caption), lang,
        str(prov.get("defaultLang", "")), user_elsewhere=False, boilerplate_counts=False,
    )
    new.description, new.alt_text = desc.items, alt.items

    # tiff:ImageDescription: Immich shows it before dc:description, so boilerplate there must go too.
    wrote_t, replaced_t = _alt_dict(prov, "wroteImageDescription"), _alt_dict(prov, "replacedImageDescription")
    owned_t, boiler_t, user_t = _ours_and_users(old.image_description, wrote_t, True)
    ours_default = desc.wrote.get("x-default")
    tiff = _Slots(old.image_description, {l: wrote_t[l] for l in owned_t}, {l: replaced_t[l] for l in owned_t if l in replaced_t})
    needed = ("x-default" in boiler_t or "x-default" in owned_t
              or (not old.image_description and image.has_boilerplate_description()))
    if ours_default and needed and "x-default" not in user_t:
        if "x-default" in boiler_t:
            tiff.replaced["x-default"] = dict(old.image_description)["x-default"]
        tiff.items = _put(old.image_description, "x-default", ours_default)
        tiff.wrote["x-default"] = ours_default
    elif "x-default" in owned_t:
        tiff.items = _undo_alt(old.image_description, wrote_t, replaced_t)
        tiff.wrote, tiff.replaced = {}, {}
    new.image_description = tiff.items

    ours = [_xmp.xml_safe(k) for k in clean_keywords(content.keywords)]
    _decide_keywords(old, new, [k for k in ours if k], hierarchy_parent, image, content.paths)

    captions = dict(_alt_dict(prov, "captions"))
    if caption:
        captions[lang] = caption
    created = prov.get("createdFile") or ("False" if existed else "True")
    fields: dict[str, object] = {
        "endpoint": _clean_text(content.endpoint),
        "token": _clean_text(content.token),
        "status": _clean_text(content.status),
        "reason": _clean_text(content.reason) if content.reason is not None else None,
        "flags": tuple(f for f in (_clean_text(x) for x in content.flags) if f),
        "date": _clean_text(content.settled_at),
        "caption": caption,
        "contentHash": _clean_text(content.content_hash),
        "categories": tuple(f for f in (_clean_text(x) for x in content.categories) if f),
        "locale": lang,
        "captions": _alt_tuple(captions),
        "defaultLang": default_lang,
        "wroteDescription": _alt_tuple(desc.wrote),
        "wroteAltText": _alt_tuple(alt.wrote),
        "wroteImageDescription": _alt_tuple(tiff.wrote),
        "replacedDescription": _alt_tuple(desc.replaced),
        "replacedImageDescription": _alt_tuple(tiff.replaced),
        "createdFile": created,
        "imageCopy": prov.get("imageCopy"),
        **{k: new.prov[k] for k in new.prov},
        "reusedFrom": _clean_text(content.reused_from) if content.reused_from else None,
    }
    new.prov = {k: v for k, v in fields.items() if v not in (None, "", ())}  # type: ignore[misc]
    return new


# --- writing -----------------------------------------------------------------


def _apply(packet: Packet, state: _State, metadata_date: str | None) -> None:
    """Write ``state`` into the packet: managed properties where they stand, new ones and tagger's in one Description."""
    for name in _tagger_names(packet):
        _xmp.remove_property(packet, name)
    for element, declared in packet.decls.items():
        # tagger's namespace goes with its last property; nothing else can use it.
        if any(uri == TAGGER for _, uri in declared):
            packet.decls[element] = [(p, u) for p, u in declared if u != TAGGER]
    appended: list[tuple[str, str, list[tuple[str | None, str]]]] = []
    for name, kind, items in (
        (_DESCRIPTION, "Alt", list(state.description)),
        (_ALT_TEXT, "Alt", list(state.alt_text)),
        (_IMAGE_DESCRIPTION, "Alt", list(state.image_description)),
        (_SUBJECT, "Bag", [(None, v) for v in state.subject]),
        (_HIERARCHICAL, "Bag", [(None, v) for v in state.hierarchical]),
        (_TAGS, "Seq", [(None, v) for v in state.tags]),
        (_METADATA_DATE, "", [(None, metadata_date or "")]),
    ):
        items = [(lang, text) for lang, text in items if text]
        existing = _xmp.property_kind(packet, name)
        if kind in ("Bag", "Seq") and existing in ("Bag", "Seq"):
            kind = existing  # a dc:subject written as Seq stays a Seq
        if not _xmp.set_property(packet, name, kind, items) and items:
            appended.append((name, kind, items))
    for local in _PROV_FIELDS:
        value = state.prov.get(local)
        if local in _PROV_ALTS and value:
            appended.append((f"{{{TAGGER}}}{local}", "Alt", list(value)))  # type: ignore[arg-type]
        elif isinstance(value, tuple) and value:
            appended.append((f"{{{TAGGER}}}{local}", "Bag", [(None, v) for v in value]))  # type: ignore[misc]
        elif value:
            appended.append((f"{{{TAGGER}}}{local}", "", [(None, value)]))  # type: ignore[list-item]
    if appended:
        _xmp.append_description(packet, appended)


def _target(path: str) -> str:
    # Replacing a symlink would cut it; write through it instead.
    return os.path.realpath(path) if os.path.islink(path) else path


def _encode(packet: Packet, path: str) -> bytes:
    data = _xmp.serialise(packet).encode("utf-8")
    try:
        _xmp.parse(data)  # never replace a good file with one we cannot read back
    except _xmp.XmpFormatError as exc:
        raise SidecarError(f"{display(path)}: refusing to write a broken packet ({exc})") from None
    return data


def _replace(target: str, path: str, data: bytes, before: bytes | None, ident: tuple | None, image: _Image) -> None:
    """Atomically put ``data`` at ``target`` unless it changed since it was read (TargetChanged)."""
    if ident is not None:
        mode, owner = stat.S_IMODE(ident[6]), (ident[4], ident[5])  # the sidecar keeps its own
    else:
        mode, owner = None, image.owner()  # a new sidecar belongs to the photo's owner and group

    def unchanged() -> bool:
        now_data, now_ident = _snapshot(target)
        return now_ident == ident and now_data == before

    try:
        folder = os.path.dirname(target) or os.curdir
        os.makedirs(folder, exist_ok=True)
        atomic_write(target, lambda f: f.write(data), mode=mode, owner=owner, precondition=unchanged,
                     listing=folder_listing(folder))
    except OSError as exc:
        raise SidecarError(f"{display(path)}: cannot write ({exc.strerror or exc})") from None


def _merge_loop(path: str, step: Callable[[bytes | None], tuple[bytes, Callable[[], None]] | None], target: str,
                image: _Image, attempts: int) -> bool:
    for _ in range(attempts):
        before, ident = _snapshot(target)
        result = step(before)
        if result is None:
            return False
        data, after = result
        try:
            if data:
                _replace(target, path, data, before, ident, image)
            elif _snapshot(target) != (before, ident):
                continue  # changed before the delete: decide again on what is there now
            after()
        except TargetChanged:
            continue  # another app saved the sidecar meanwhile: merge into what it wrote
        return True
    raise SidecarError(f"{display(path)}: kept changing while tagger merged into it ({attempts} tries); left as it was")


_MANAGED = (_DESCRIPTION, _ALT_TEXT, _IMAGE_DESCRIPTION, _SUBJECT, _HIERARCHICAL, _TAGS)


def _repair(legacy: Packet, photo: _Image) -> tuple[Packet, str]:
    """A sidecar an earlier tagger created without the image's metadata, rebuilt on a copy of it.

    What other apps wrote into it since is kept over the copy; tagger's own
    fields go, to be decided again. Returns the packet and the copy's digest.
    """
    packet = photo.packet()
    digest = _xmp.fingerprint(packet, skip=(_METADATA_DATE,))
    old = _read(legacy)
    prov = old.prov
    foreign = [n for n in _xmp.property_names(legacy)
               if n not in _MANAGED and n != _METADATA_DATE and not n.startswith(f"{{{TAGGER}}}")]
    _xmp.copy_properties(packet, legacy, foreign)
    copy = _read(packet)
    for name, items, wrote in ((_DESCRIPTION, old.description, "wroteDescription"), (_ALT_TEXT, old.alt_text, "wroteAltText"),
                               (_IMAGE_DESCRIPTION, old.image_description, "wroteImageDescription")):
        written = _alt_dict(prov, wrote)
        merged = dict(_alt(packet, name))
        merged.update({lang: text for lang, text in items if written.get(lang) != text})
        if merged != dict(_alt(packet, name)):
            ordered = sorted(merged.items(), key=lambda item: item[0] != "x-default")
            if not _xmp.set_property(packet, name, "Alt", ordered):
                _xmp.append_description(packet, [(name, "Alt", list(ordered))])
    for field, name, _sep in _LISTS:
        drop = set(prov.get(f"added{_PROV_LIST[field]}", ())) | set(prov.get(f"seeded{_PROV_LIST[field]}", ()))
        have = getattr(copy, field)
        extra = [v for v in getattr(old, field) if v not in drop and v not in have]
        if extra:
            kind = _xmp.property_kind(packet, name) or ("Seq" if name == _TAGS else "Bag")
            if not _xmp.set_property(packet, name, kind, [(None, v) for v in have + extra]):
                _xmp.append_description(packet, [(name, kind, [(None, v) for v in have + extra])])
    return packet, digest


def write_sidecar(
    path: str,
    content: SidecarContent,
    *,
    hierarchy_parent: str = "CloudSight",
    now: datetime | None = None,
    image: str | None = None,
    attempts: int = MERGE_ATTEMPTS,
) -> bool:
    """Create or merge the sidecar at ``path``; False when nothing changed (file not touched).

    ``image`` is the photo's path: a new sidecar starts as a copy of its
    metadata and gets its owner and group, and its description and keywords
    count as the user's.
    """
    target = _target(path)
    photo = _Image(image)

    def step(before: bytes | None):
        packet = parse_sidecar(path, before)
        existed = before is not None
        fresh = before is None or not before.strip()
        old = _read(packet)
        digest = None
        if fresh:
            # Apps read a sidecar instead of the image: it must start with what the image carries.
            packet = photo.packet()
            copied = _read(packet)
            old = _State(copied.description, copied.alt_text, copied.image_description, copied.subject,
                         copied.hierarchical, copied.tags, {})
            if not existed:
                digest = _xmp.fingerprint(packet, skip=(_METADATA_DATE,))
        elif photo.path and old.prov.get("createdFile") == "True" and not old.prov.get("imageCopy"):
            # Created by a tagger that did not copy the image yet: it hides the photo's own metadata.
            prov = old.prov
            packet, digest = _repair(packet, photo)
            old = _read(packet)
            old.prov = prov  # tagger's record stays: it says which texts and keywords were its own
        new = _decide(old, content, existed, hierarchy_parent, photo)
        if digest is not None:
            new.prov["imageCopy"] = digest
        if new == old and not fresh and digest is None:
            return None
        _apply(packet, new, utc_stamp(now))
        return _encode(packet, path), lambda: None

    return _merge_loop(path, step, target, photo, attempts)


def sidecar_provenance(path: str) -> Prov:
    """What tagger recorded in the sidecar at ``path`` (its ``tagger:`` fields); empty when there is none or it is unreadable."""
    try:
        data, _ = _snapshot(_target(path))
        return read_provenance(parse_sidecar(path, data)) if data is not None else {}
    except SidecarError:
        return {}


def _leaves_nothing(packet: Packet, copy_digest: str | None) -> bool:
    if copy_digest and _xmp.fingerprint(packet, skip=(_METADATA_DATE,)) == copy_digest:
        return True  # only the copy of the image's own metadata is left
    for child in packet.rdf:
        if child.tag != f"{{{RDF}}}Description":
            return False
        if set(child.attrib) - {f"{{{RDF}}}about", _METADATA_DATE}:
            return False
        if any(c.tag != _METADATA_DATE for c in child):
            return False
    return True


def strip_sidecar(path: str, *, attempts: int = MERGE_ATTEMPTS) -> str:
    """Undo what tagger wrote: "unchanged", "updated", "deleted" (tagger created it) or "absent"."""
    target = _target(path)
    if not os.path.lexists(target):
        return "absent"
    outcome = ["unchanged"]

    def step(before: bytes | None):
        if before is None:
            outcome[0] = "absent"
            return None
        packet = parse_sidecar(path, before)
        old = _read(packet)
        prov = old.prov
        if not prov:
            outcome[0] = "unchanged"
            return None
        new = _State(
            _undo_alt(old.description, _alt_dict(prov, "wroteDescription"), _alt_dict(prov, "replacedDescription")),
            _undo_alt(old.alt_text, _alt_dict(prov, "wroteAltText"), {}),
            _undo_alt(old.image_description, _alt_dict(prov, "wroteImageDescription"),
                      _alt_dict(prov, "replacedImageDescription")),
            [], [], [], {},
        )
        for field, _, _ in _LISTS:
            drop = set(prov.get(f"added{_PROV_LIST[field]}", ())) | set(prov.get(f"seeded{_PROV_LIST[field]}", ()))
            setattr(new, field, [v for v in getattr(old, field) if v not in drop])
        dates = _values(packet, _METADATA_DATE)
        _apply(packet, new, dates[0] if dates else None)
        if prov.get("createdFile") == "True" and _leaves_nothing(packet, str(prov.get("imageCopy", "")) or None):
            def delete() -> None:
                try:
                    os.unlink(target)
                except OSError as exc:
                    raise SidecarError(f"{display(path)}: cannot delete ({exc.strerror or exc})") from None
                fsync_dir(os.path.dirname(target) or os.curdir)
                outcome[0] = "deleted"
            return b"", delete
        outcome[0] = "updated"
        return _encode(packet, path), lambda: None

    _merge_loop(path, step, target, _Image(None), attempts)
    return outcome[0]
