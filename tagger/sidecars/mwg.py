"""The image's own metadata as XMP, by the Metadata Working Group's rules.

``image_packet`` is what a new sidecar starts from, the way
``exiftool -tagsfromfile @ -xmp:all`` plus exiftool's MWG module would
build it: the embedded XMP packet's properties, then each IPTC-IIM or
EXIF field whose XMP counterpart the packet lacks (XMP wins, as MWG
reconciles):

| XMP | from |
| --- | --- |
| dc:description | IPTC Caption-Abstract, else EXIF ImageDescription (not camera boilerplate), else XPComment |
| dc:title | IPTC ObjectName, else XPTitle |
| dc:creator (Seq) | IPTC By-line, else EXIF Artist, else XPAuthor |
| dc:rights | IPTC CopyrightNotice, else EXIF Copyright |
| dc:subject (Bag) | IPTC Keywords and XPKeywords |
| xmp:Rating | EXIF Rating |

Not copied: darktable's namespace (an exported JPEG's develop history
belongs to its RAW; copied into this photo's sidecar darktable would apply
it again) and ``xmpNote:HasExtendedXMP`` (the extension stays in the file).
"""

from __future__ import annotations

import logging
import re

from tagger.prepare.embedded import ImageMetadata, is_boilerplate
from tagger.sidecars import xmp as _xmp
from tagger.sidecars.xmp import DC, XMP, Packet

__all__ = ["image_packet", "mapped_fields", "DARKTABLE"]

log = logging.getLogger("tagger.sidecars.mwg")

DARKTABLE = "http://darktable.sf.net/"
_XMP_NOTE_EXTENDED = "{http://ns.adobe.com/xmp/note/}HasExtendedXMP"


#: What XML 1.0 cannot carry, and other control characters: C0 but tab, LF and CR; DEL and C1; lone
#: surrogates; U+FFFE and U+FFFF. A camera or app that wrote one into a comment must not cost the sidecar.
_UNCARRIABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _clean(meta: ImageMetadata) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """The IPTC and EXIF texts without the characters a packet cannot carry (dropped from the copy)."""
    iptc = {k: tuple(t for t in (_UNCARRIABLE.sub("", v) for v in vs) if t) for k, vs in meta.iptc.items()}
    exif = {k: _UNCARRIABLE.sub("", v) for k, v in meta.exif.items()}
    return iptc, exif


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(";") if part.strip()]


def mapped_fields(meta: ImageMetadata) -> list[tuple[str, str, list[tuple[str | None, str]]]]:
    """The IPTC/EXIF fields as XMP properties (name, kind, items), before reconciling with the packet."""
    iptc, exif = _clean(meta)
    out: list[tuple[str, str, list[tuple[str | None, str]]]] = []

    def first(*candidates: str | None) -> str:
        return next((c for c in candidates if c and c.strip()), "")

    description = first(
        (iptc.get("Caption-Abstract") or ("",))[0],
        None if is_boilerplate(exif.get("ImageDescription")) else exif.get("ImageDescription"),
        exif.get("XPComment"),
    )
    if description:
        out.append((f"{{{DC}}}description", "Alt", [("x-default", description)]))
    title = first((iptc.get("ObjectName") or ("",))[0], exif.get("XPTitle"))
    if title:
        out.append((f"{{{DC}}}title", "Alt", [("x-default", title)]))
    creators = list(iptc.get("By-line", ())) or _split(exif.get("Artist")) or _split(exif.get("XPAuthor"))
    if creators:
        out.append((f"{{{DC}}}creator", "Seq", [(None, c) for c in dict.fromkeys(creators)]))
    rights = first((iptc.get("CopyrightNotice") or ("",))[0], exif.get("Copyright"))
    if rights:
        out.append((f"{{{DC}}}rights", "Alt", [("x-default", rights)]))
    keywords: dict[str, str] = {}
    for word in [*iptc.get("Keywords", ()), *_split(exif.get("XPKeywords"))]:
        keywords.setdefault(word.casefold(), word)
    if keywords:
        out.append((f"{{{DC}}}subject", "Bag", [(None, k) for k in keywords.values()]))
    if exif.get("Rating"):
        out.append((f"{{{XMP}}}Rating", "", [(None, exif["Rating"])]))
    return out


def image_packet(meta: ImageMetadata) -> Packet:
    """A packet holding the image's own metadata (a new packet when the image carries none)."""
    packet = _xmp.new_packet()
    if meta.xmp:
        try:
            packet = _xmp.parse(meta.xmp.rstrip(b"\x00"))
        except _xmp.XmpFormatError as exc:
            log.info("embedded XMP not copied: %s", exc)
        # A fresh prolog and epilog: the embedded packet's padding has no place in a sidecar.
        packet.prolog, packet.epilog = _xmp.new_packet().prolog, _xmp.new_packet().epilog
        if packet.root.tag == f"{{{_xmp.RDF}}}RDF":
            wrapper = _xmp.new_packet()
            wrapper.root.remove(wrapper.rdf)
            wrapper.root.append(packet.root)
            packet.root.tail = "\n"
            wrapper.decls.update(packet.decls)
            packet = wrapper
    _xmp.remove_namespace(packet, DARKTABLE)
    _xmp.remove_property(packet, _XMP_NOTE_EXTENDED)
    missing = [
        (name, kind, items)
        for name, kind, items in mapped_fields(meta)
        if not any(text.strip() for _, text in _xmp.property_items(packet, name))
    ]
    if missing:
        for name, _kind, _items in missing:
            _xmp.remove_property(packet, name)  # an empty copy would otherwise stand beside the new one
        _xmp.append_description(packet, missing)
    return packet
