"""Deciding what each field tagger manages becomes: descriptions and alt text, keywords, and their undoing.

A description the user wrote anywhere (the sidecar in any language, or the
photo when the sidecar has none) wins: tagger's caption then goes only to
its namespace. Where tagger writes one, its first caption is ``x-default``
and every later language gets its own ``xml:lang``; camera boilerplate is
written over and remembered, to be put back by ``undo_fields``. A keyword
field tagger adds is seeded with the user's keywords from the other fields.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from tagger.keywords.derive import clean_keyword, clean_keywords
from tagger.prepare.embedded import is_boilerplate
from tagger.sidecars import xmp as _xmp
from tagger.sidecars.provenance import PROV_LIST, alt_dict, alt_text_of, alt_tuple, tagger_keywords
from tagger.sidecars.read import LISTS, METADATA_DATE, Photo, State
from tagger.sidecars.xmp import RDF, Packet

__all__ = ["SidecarContent", "decide_fields", "undo_fields", "leaves_nothing"]

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


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
    #: A person's review: "approved" (the machine's caption as it was) or "edited" (the caption and keywords are theirs).
    review: str | None = None


def _clean_text(text: str | None) -> str:
    """NFC text with line breaks as LF and no control characters but tab and LF."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    # Exiv2 turns DEL and C1 controls into spaces, so they would never read back the same.
    text = _CONTROLS.sub("", _xmp.xml_safe(text))
    # Drop characters before composing: removing one afterwards could undo NFC.
    return unicodedata.normalize("NFC", text).strip()


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _key(value: str) -> str:
    return unicodedata.normalize("NFC", value).casefold()


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
    out = [(code, t) for code, t in items if code != lang]
    if text is None:
        return out
    if lang == "x-default":
        return [(lang, text)] + out
    if any(code == lang for code, _ in items):
        return [(code, text if code == lang else t) for code, t in items]
    return out + [(lang, text)]


def _decide_alt(items, wrote_prev, replaced_prev, text, lang, default_lang_prev, *, user_elsewhere, boilerplate_counts):
    """Where ``text`` (in language ``lang``) goes among ``items``; returns (_Slots, default language)."""
    owned, boiler, user = _ours_and_users(items, wrote_prev, boilerplate_counts)
    wrote = {code: t for code, t in items if code in owned}
    replaced = {code: t for code, t in replaced_prev.items() if code in owned}
    if user or user_elsewhere:
        # A user's text anywhere: tagger keeps no alternative beside it (readers would show tagger's
        # x-default instead, and darktable joins every language into one text).
        return _Slots([(code, t) for code, t in items if code not in owned], {}, {}), ""
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
    """``items`` with each text tagger wrote replaced by what it replaced (or removed)."""
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
    sep = {f: s for f, _, s in LISTS}[field]
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
    old: State,
    new: State,
    ours: list[str],
    hierarchy_parent: str,
    image: Photo,
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
    for field, _, _ in LISTS:
        tagger_values = tagger_keywords(prov, field)
        own[field] = [v for v in getattr(old, field) if v not in tagger_values]
    if any(own.values()):
        pool = {field: own[field] for field in own}
    else:
        # No keyword of the user's in the sidecar: the image's are what readers showed so far.
        img = image.state()
        pool = {"subject": img.subject, "hierarchical": img.hierarchical, "tags": img.tags}
    for field, _, _sep in LISTS:
        have = {_key(v) for v in own[field]}
        seeded: list[str] = []
        if ours_by[field] and (not own[field] or prov.get(f"seeded{PROV_LIST[field]}")):
            sources = [(s, pool[f]) for f, _, s in LISTS if f != field and f != "subject"]
            sources.append(("", pool["subject"]) if field != "subject" else ("", []))
            seeded = _seed(field, sources, have)
        added = [v for v in ours_by[field] if _key(v) not in have]
        setattr(new, field, own[field] + seeded + added)
        new.prov[f"added{PROV_LIST[field]}"] = tuple(added)
        new.prov[f"seeded{PROV_LIST[field]}"] = tuple(seeded)


def decide_fields(old: State, content: SidecarContent, existed: bool, hierarchy_parent: str, image: Photo) -> State:
    """What the managed fields and the provenance become once ``content`` is merged into ``old``."""
    caption = _clean_text(content.caption)
    # xml:lang is a BCP 47 tag: en-US, not en_US.
    lang = _clean_text(content.locale).replace("_", "-") or "x-default"
    prov = old.prov
    new = State(old.description, old.alt_text, old.image_description, [], [], [], {})

    # A description the user wrote anywhere: in this sidecar (any language) or, when it has none, the image.
    elsewhere = False
    if not old.description:
        img = image.state()
        elsewhere = any(not is_boilerplate(text) for _, text in img.description)
    desc, default_lang = _decide_alt(
        old.description,
        alt_dict(prov, "wroteDescription"),
        alt_dict(prov, "replacedDescription"),
        caption,
        lang,
        str(prov.get("defaultLang", "")),
        user_elsewhere=elsewhere,
        boilerplate_counts=True,
    )
    alt, _ = _decide_alt(
        old.alt_text,
        alt_dict(prov, "wroteAltText"),
        {},
        alt_text_of(caption),
        lang,
        str(prov.get("defaultLang", "")),
        user_elsewhere=False,
        boilerplate_counts=False,
    )
    new.description, new.alt_text = desc.items, alt.items

    # tiff:ImageDescription: Immich shows it before dc:description, so boilerplate there must go too.
    wrote_t, replaced_t = alt_dict(prov, "wroteImageDescription"), alt_dict(prov, "replacedImageDescription")
    owned_t, boiler_t, user_t = _ours_and_users(old.image_description, wrote_t, True)
    ours_default = desc.wrote.get("x-default")
    tiff = _Slots(
        old.image_description,
        {code: wrote_t[code] for code in owned_t},
        {code: replaced_t[code] for code in owned_t if code in replaced_t},
    )
    needed = (
        "x-default" in boiler_t
        or "x-default" in owned_t
        or (not old.image_description and image.has_boilerplate_description())
    )
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

    captions = dict(alt_dict(prov, "captions"))
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
        "captions": alt_tuple(captions),
        "defaultLang": default_lang,
        "wroteDescription": alt_tuple(desc.wrote),
        "wroteAltText": alt_tuple(alt.wrote),
        "wroteImageDescription": alt_tuple(tiff.wrote),
        "replacedDescription": alt_tuple(desc.replaced),
        "replacedImageDescription": alt_tuple(tiff.replaced),
        "createdFile": created,
        "imageCopy": prov.get("imageCopy"),
        **{k: new.prov[k] for k in new.prov},
        "reusedFrom": _clean_text(content.reused_from) if content.reused_from else None,
        "review": _clean_text(content.review) if content.review else None,
    }
    new.prov = {k: v for k, v in fields.items() if v not in (None, "", ())}  # type: ignore[misc]
    return new


def undo_fields(old: State) -> State:
    """``old`` without what tagger wrote: its texts give back what they replaced, its keywords and seeded copies go."""
    prov = old.prov
    new = State(
        _undo_alt(old.description, alt_dict(prov, "wroteDescription"), alt_dict(prov, "replacedDescription")),
        _undo_alt(old.alt_text, alt_dict(prov, "wroteAltText"), {}),
        _undo_alt(
            old.image_description, alt_dict(prov, "wroteImageDescription"), alt_dict(prov, "replacedImageDescription")
        ),
        [],
        [],
        [],
        {},
    )
    for field, _, _ in LISTS:
        drop = tagger_keywords(prov, field)
        setattr(new, field, [v for v in getattr(old, field) if v not in drop])
    return new


def leaves_nothing(packet: Packet, copy_digest: str | None) -> bool:
    """True when a stripped sidecar tagger created holds nothing anyone else wrote (it can be deleted)."""
    if copy_digest and _xmp.packet_digest(packet, skip=(METADATA_DATE,)) == copy_digest:
        return True  # only the copy of the image's own metadata is left
    for child in packet.rdf:
        if child.tag != f"{{{RDF}}}Description":
            return False
        if set(child.attrib) - {f"{{{RDF}}}about", METADATA_DATE}:
            return False
        if any(c.tag != METADATA_DATE for c in child):
            return False
    return True
