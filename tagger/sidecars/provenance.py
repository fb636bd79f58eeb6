"""tagger's record in a sidecar (the ``tagger:`` namespace): its fields, read back, older forms translated.

``wrote*``/``replaced*`` hold the texts tagger put in each language slot and
the boilerplate it replaced, ``added*`` its keywords, ``seeded*`` the copies
of the user's keywords in fields tagger created, ``imageCopy`` a digest of
the copy a new sidecar started from; ``contentHash`` and ``categories`` say
which job the caption is (a lost ledger adopts it from here); ``review``
says a person approved the caption or edited it (then caption and keywords
are theirs).
"""

from __future__ import annotations

from typing import cast

from tagger.sidecars import xmp as _xmp
from tagger.sidecars.xmp import TAGGER, Packet

__all__ = [
    "Alt",
    "Prov",
    "PROV_FIELDS",
    "PROV_BAGS",
    "PROV_ALTS",
    "PROV_LIST",
    "ALT_TEXT_LIMIT",
    "read_provenance",
    "tagger_names",
    "tagger_keywords",
    "alt_dict",
    "alt_tuple",
    "alt_text_of",
]

#: IPTC 2021.1 caps Alt Text (Accessibility) at 250 characters.
ALT_TEXT_LIMIT = 250

Alt = tuple[tuple[str, str], ...]
Prov = dict[str, "str | tuple[str, ...] | Alt"]

#: Provenance, in the order written; PROV_BAGS are rdf:Bag, PROV_ALTS rdf:Alt (language -> text).
PROV_FIELDS = (
    "endpoint",
    "token",
    "status",
    "reason",
    "flags",
    "date",
    "caption",
    "contentHash",
    "categories",
    "locale",
    "captions",
    "defaultLang",
    "wroteDescription",
    "wroteAltText",
    "wroteImageDescription",
    "replacedDescription",
    "replacedImageDescription",
    "createdFile",
    "imageCopy",
    "addedSubject",
    "addedHierarchicalSubject",
    "addedTagsList",
    "seededSubject",
    "seededHierarchicalSubject",
    "seededTagsList",
    "reusedFrom",
    "review",
)
PROV_BAGS = frozenset(
    {
        "flags",
        "categories",
        "addedSubject",
        "addedHierarchicalSubject",
        "addedTagsList",
        "seededSubject",
        "seededHierarchicalSubject",
        "seededTagsList",
    }
)
PROV_ALTS = frozenset(
    {
        "captions",
        "wroteDescription",
        "wroteAltText",
        "wroteImageDescription",
        "replacedDescription",
        "replacedImageDescription",
    }
)
#: The suffix of the ``added*``/``seeded*`` fields of each keyword list.
PROV_LIST = {"subject": "Subject", "hierarchical": "HierarchicalSubject", "tags": "TagsList"}


def read_provenance(packet: Packet) -> Prov:
    """What tagger recorded in a sidecar's ``tagger:`` namespace (older sidecars' fields translated)."""
    prov: Prov = {}
    for name in tagger_names(packet):
        local = name.split("}", 1)[1]
        if local in PROV_ALTS:
            prov[local] = tuple(_xmp.lang_alt(packet, name))
            continue
        values = _xmp.values(packet, name)
        prov[local] = tuple(values) if local in PROV_BAGS else (values[0] if values else "")
    # Sidecars written before languages: x-default and the alt text were the only slots.
    caption = str(prov.get("caption", ""))
    if prov.pop("descriptionWritten", None) == "True":
        prov.setdefault("wroteDescription", (("x-default", caption),))
    if prov.pop("altTextWritten", None) == "True":
        prov.setdefault("wroteAltText", (("x-default", alt_text_of(caption)),))
    return prov


def tagger_names(packet: Packet) -> list[str]:
    """The ``tagger:`` properties in ``packet`` (attributes and elements), each once, in order."""
    prefix = f"{{{TAGGER}}}"
    names: list[str] = []
    for desc in _xmp.descriptions(packet):
        names += [k for k in desc.attrib if k.startswith(prefix)]
        names += [c.tag for c in desc if isinstance(c.tag, str) and c.tag.startswith(prefix)]
    return list(dict.fromkeys(names))


def tagger_keywords(prov: Prov, field: str) -> set[str]:
    """The values of keyword list ``field`` that are tagger's: its own and the copies it seeded."""
    added = cast("tuple[str, ...]", prov.get(f"added{PROV_LIST[field]}", ()))  # a list field's provenance
    seeded = cast("tuple[str, ...]", prov.get(f"seeded{PROV_LIST[field]}", ()))
    return set(added) | set(seeded)


def alt_dict(prov: Prov, name: str) -> dict[str, str]:
    """The language alternative ``name`` of ``prov`` as language -> text."""
    return dict(prov.get(name, ()))  # type: ignore[arg-type]


def alt_tuple(values: dict[str, str]) -> Alt:
    """``values`` as an Alt reads back: x-default first, then the languages in order."""
    return tuple(sorted(values.items(), key=lambda item: item[0] != "x-default"))


def alt_text_of(caption: str) -> str:
    """The caption cut to ALT_TEXT_LIMIT characters at a word boundary (the alt text tagger writes)."""
    if len(caption) <= ALT_TEXT_LIMIT:
        return caption
    head = caption[: ALT_TEXT_LIMIT + 1]
    space = max(head.rfind(" "), head.rfind("\n"))
    cut = caption[:space] if space > 0 else caption[:ALT_TEXT_LIMIT]
    return cut.rstrip(" \n,;:-")
