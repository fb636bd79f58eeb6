"""Repairing a sidecar an earlier tagger created without a copy of the photo's metadata (it hid that metadata)."""

from __future__ import annotations

from tagger.sidecars import xmp as _xmp
from tagger.sidecars.provenance import alt_dict, tagger_keywords
from tagger.sidecars.read import (
    ALT_TEXT,
    DESCRIPTION,
    IMAGE_DESCRIPTION,
    LISTS,
    MANAGED,
    METADATA_DATE,
    TAGS,
    Photo,
    read_state,
)
from tagger.sidecars.xmp import TAGGER, Packet

__all__ = ["repair_legacy"]


def repair_legacy(legacy: Packet, photo: Photo) -> tuple[Packet, str]:
    """A sidecar an earlier tagger created without the image's metadata, rebuilt on a copy of it.

    What other apps wrote into it since is kept over the copy; tagger's own
    fields go, to be decided again. Returns the packet and the copy's digest.
    """
    packet = photo.packet()
    digest = _xmp.packet_digest(packet, skip=(METADATA_DATE,))
    old = read_state(legacy)
    prov = old.prov
    foreign = [
        n
        for n in _xmp.property_names(legacy)
        if n not in MANAGED and n != METADATA_DATE and not n.startswith(f"{{{TAGGER}}}")
    ]
    _xmp.copy_properties(packet, legacy, foreign)
    copy = read_state(packet)
    for name, items, wrote in (
        (DESCRIPTION, old.description, "wroteDescription"),
        (ALT_TEXT, old.alt_text, "wroteAltText"),
        (IMAGE_DESCRIPTION, old.image_description, "wroteImageDescription"),
    ):
        written = alt_dict(prov, wrote)
        merged = dict(_xmp.lang_alt(packet, name))
        merged.update({lang: text for lang, text in items if written.get(lang) != text})
        if merged != dict(_xmp.lang_alt(packet, name)):
            ordered = sorted(merged.items(), key=lambda item: item[0] != "x-default")
            if not _xmp.set_property(packet, name, "Alt", ordered):
                _xmp.append_description(packet, [(name, "Alt", list(ordered))])
    for field, name, _sep in LISTS:
        drop = tagger_keywords(prov, field)
        have = getattr(copy, field)
        extra = [v for v in getattr(old, field) if v not in drop and v not in have]
        if extra:
            kind = _xmp.property_kind(packet, name) or ("Seq" if name == TAGS else "Bag")
            if not _xmp.set_property(packet, name, kind, [(None, v) for v in have + extra]):
                _xmp.append_description(packet, [(name, kind, [(None, v) for v in have + extra])])
    return packet, digest
