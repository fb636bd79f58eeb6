"""What each photo app will show for a photo and its sidecar, by that app's own read order.

``READERS`` is the table of rules, one row per app, each citing where the
rule comes from. ``show`` applies them to one photo and marks each part as
the user's or tagger's (tagger's parts are those its sidecar namespace
records as written or added by it; seeded copies of the user's keywords
count as the user's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tagger.errors import UsageError
from tagger.prepare.embedded import ImageMetadata, read_image_metadata
from tagger.sidecars import xmp as _xmp
from tagger.sidecars.mwg import image_packet
from tagger.sidecars.naming import sidecar_folder
from tagger.sidecars.write import SidecarError, parse_sidecar, read_provenance
from tagger.sidecars.xmp import DC, DIGIKAM, LR, TIFF, Packet, lang_alt, values

if TYPE_CHECKING:
    from tagger.ledger.store import Ledger

__all__ = ["Reader", "READERS", "Shown", "show", "sidecars_of", "mirror_folder_of"]

_PROPRIETARY_RAW = frozenset({".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"})


@dataclass(frozen=True)
class Reader:
    """One app's read order for description and keywords."""

    name: str
    sidecars: str
    description: str
    keywords: str
    source: str


#: The rules, as each app's source or documentation states them.
READERS: tuple[Reader, ...] = (
    Reader(
        "darktable",
        "IMG.JPG.xmp, else IMG.xmp; the sidecar replaces the image's XMP, IPTC and EXIF text",
        'dc:description, every language joined (`text, lang="de-DE" text`)',
        "lr:hierarchicalSubject, else dc:subject",
        "darktable src/common/exif.cc (_exif_decode_xmp_data; dt_exif_xmp_read at import)",
    ),
    Reader(
        "digiKam",
        "IMG.JPG.xmp (sidecar reading on) replaces the image's XMP; EXIF/IPTC still from the image",
        "dc:description x-default (else the first language), else IPTC Caption / EXIF ImageDescription",
        "first non-empty of digiKam:TagsList, lr:hierarchicalSubject, dc:subject, IPTC Keywords",
        "digiKam core/libs/metadataengine/dmetadata/dmetadata_tags.cpp (getItemTagsPath), dmetadata_comments.cpp",
    ),
    Reader(
        "Lightroom Classic",
        "IMG.xmp for proprietary RAW only; JPEG, TIFF, PNG, HEIC, DNG: the file's own XMP",
        "dc:description x-default (Caption)",
        "lr:hierarchicalSubject and dc:subject",
        "Adobe, Lightroom Classic help: 'Metadata basics and actions' (XMP sidecars are written for raw files)",
    ),
    Reader(
        "Immich",
        "IMG.JPG.xmp, else IMG.xmp; each sidecar tag overrides the file's tag of that name",
        "ImageDescription (tiff:/EXIF), else Description (dc:description x-default)",
        "TagsList, else HierarchicalSubject (| as /), else Keywords (IPTC)",
        "immich server/src/services/metadata.service.ts (exifData.description, applyTagList)",
    ),
    Reader(
        "PhotoPrism",
        "IMG.JPG.xmp or IMG.xmp; a non-empty sidecar value wins over the file's",
        "dc:description: the last rdf:li of the Alt",
        "the file's keywords, plus dc:subject from the sidecar only when it is an rdf:Seq",
        "photoprism internal/meta/xmp_document.go (Description, Keywords)",
    ),
)


@dataclass
class Shown:
    """What one app shows: the description, its keywords, and which of them are tagger's."""

    description: str = ""
    description_by: str | None = None
    keywords: list[str] = field(default_factory=list)
    tagger_keywords: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        """The JSON form ``tagger show --json`` prints."""
        return {
            "description": self.description,
            "description_by": self.description_by,
            "keywords": self.keywords,
            "tagger_keywords": self.tagger_keywords,
        }


@dataclass
class _Sources:
    image: Packet
    meta: ImageMetadata
    full: Packet | None
    base: Packet | None
    ours_text: set[str]
    ours_keywords: set[str]


def _load(path: str) -> Packet | None:
    try:
        with open(path, "rb") as f:
            return parse_sidecar(path, f.read())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SidecarError(f"{path}: cannot read ({exc.strerror or exc})") from None


def sidecars_of(photo: str, sidecar: str | None = None, folder: str | None = None) -> tuple[str | None, str | None]:
    """The full-form and base-name sidecar paths ``show`` reads: ``sidecar`` alone (its name says its form), else both in ``folder``."""
    name = os.path.basename(photo)
    if sidecar:
        return (sidecar, None) if os.path.basename(sidecar) == name + ".xmp" else (None, sidecar)
    folder = os.path.dirname(photo) if folder is None else folder
    return os.path.join(folder, name + ".xmp"), os.path.join(folder, os.path.splitext(name)[0] + ".xmp")


def _sources(photo: str, sidecar: str | None, folder: str | None) -> _Sources:
    meta = read_image_metadata(photo)
    full_path, base_path = sidecars_of(photo, sidecar, folder)
    full = _load(full_path) if full_path else None
    base = _load(base_path) if base_path else None
    texts: set[str] = set()
    keys: set[str] = set()
    for packet in (full, base):
        if packet is None:
            continue
        prov = read_provenance(packet)
        for name in ("wroteDescription", "wroteImageDescription"):
            texts |= {text for _, text in prov.get(name, ())}  # type: ignore[str-unpack]  # an Alt: (lang, text) pairs
        for name in ("addedSubject", "addedHierarchicalSubject", "addedTagsList"):
            keys |= set(prov.get(name, ()))  # type: ignore[arg-type]
    return _Sources(image_packet(meta), meta, full, base, texts, keys)


def _x_default(packet: Packet | None, name: str) -> str:
    items = lang_alt(packet, name) if packet is not None else []
    return dict(items).get("x-default") or (items[0][1] if items else "")


def _by(text: str, parts: list[str], ours: set[str]) -> str | None:
    if not text:
        return None
    mine = [p for p in parts if p in ours]
    return "tagger" if len(mine) == len(parts) else ("user" if not mine else "both")


def _shown(description: str, parts: list[str], keywords: list[str], src: _Sources) -> Shown:
    return Shown(
        description,
        _by(description, parts, src.ours_text),
        keywords,
        [k for k in keywords if k in src.ours_keywords or k.replace("/", "|") in src.ours_keywords],
    )


def _darktable(src: _Sources) -> Shown:
    packet = src.full or src.base or src.image
    items = lang_alt(packet, f"{{{DC}}}description")
    # exiv2 writes a language alternative as 'lang="x" text, lang="y" text'; darktable drops the first prefix only.
    text = ", ".join(t if i == 0 else f'lang="{lang}" {t}' for i, (lang, t) in enumerate(items))
    keywords = values(packet, f"{{{LR}}}hierarchicalSubject") or values(packet, f"{{{DC}}}subject")
    return _shown(text, [t for _, t in items], keywords, src)


def _digikam(src: _Sources) -> Shown:
    packet = src.full or src.image
    text = _x_default(packet, f"{{{DC}}}description") or _x_default(src.image, f"{{{DC}}}description")
    keywords = (
        values(packet, f"{{{DIGIKAM}}}TagsList")
        or [v.replace("|", "/") for v in values(packet, f"{{{LR}}}hierarchicalSubject")]
        or values(packet, f"{{{DC}}}subject")
        or list(src.meta.iptc.get("Keywords", ()))
    )
    return _shown(text, [text], keywords, src)


def _lightroom(src: _Sources, photo: str) -> Shown:
    raw = os.path.splitext(photo)[1].lower() in _PROPRIETARY_RAW
    packet = (src.base or src.image) if raw else src.image
    text = _x_default(packet, f"{{{DC}}}description")
    paths = values(packet, f"{{{LR}}}hierarchicalSubject")
    covered = {part.casefold() for p in paths for part in p.split("|")}
    flats = [k for k in values(packet, f"{{{DC}}}subject") if k.casefold() not in covered]
    return _shown(text, [text], paths + flats, src)


def _immich(src: _Sources) -> Shown:
    side = src.full or src.base

    def tag(name: str, alt: bool) -> str | list[str]:
        for packet in (side, src.image):
            if packet is None:
                continue
            if alt:
                # exiftool's Description is the x-default only; a lone en-US is "Description-en-US".
                value: str | list[str] = dict(lang_alt(packet, name)).get("x-default", "")
            else:
                value = values(packet, name)
            if value:
                return value
        return "" if alt else []

    image_description = _x_default(side, f"{{{TIFF}}}ImageDescription") if side is not None else ""
    image_description = image_description or src.meta.exif.get("ImageDescription", "")
    text = (image_description or str(tag(f"{{{DC}}}description", True))).strip()
    keywords = (
        list(tag(f"{{{DIGIKAM}}}TagsList", False))
        or [v.replace("|", "/") for v in tag(f"{{{LR}}}hierarchicalSubject", False)]
        or list(src.meta.iptc.get("Keywords", ()))
    )
    return _shown(text, [text], keywords, src)


def _photoprism(src: _Sources) -> Shown:
    side = src.full or src.base
    items = lang_alt(side, f"{{{DC}}}description") if side is not None else []
    text = items[-1][1] if items else _x_default(src.image, f"{{{DC}}}description")
    keywords = values(src.image, f"{{{DC}}}subject")
    if side is not None and _xmp.property_kind(side, f"{{{DC}}}subject") == "Seq":
        keywords += [k for k in values(side, f"{{{DC}}}subject") if k not in keywords]
    return _shown(text, [text], keywords, src)


def show(photo: str, sidecar: str | None = None, *, folder: str | None = None) -> dict[str, Shown]:
    """What each app in READERS shows for ``photo`` and its sidecar (``sidecar``, else those in ``folder``, default: beside it).

    ``folder`` is where the sidecars are when they are not beside the photo
    (its place in a ``sidecar_dir`` mirror); the apps are taken to read them
    there as they would beside it.
    """
    src = _sources(photo, sidecar, folder)
    return {
        "darktable": _darktable(src),
        "digiKam": _digikam(src),
        "Lightroom Classic": _lightroom(src, photo),
        "Immich": _immich(src),
        "PhotoPrism": _photoprism(src),
    }


def mirror_folder_of(
    photo: str,
    sidecar_dir: str,
    *,
    root: str | None = None,
    ledger: Ledger | None = None,
    walked_from: str | None = None,
) -> str:
    """The folder of the ``sidecar_dir`` mirror where a run puts ``photo``'s sidecar.

    Where the ledger recorded writing the photo's sidecar, when it did and no
    ``root`` is given. Else the mirror starts at the run's root: ``root`` when
    given (the PATH given to ``tagger run``), else the root the ledger last
    saw the photo under,
    else ``walked_from`` (a folder ``tagger show`` was given, taken as that
    PATH). UsageError when none is known or the photo is not under ``root``.
    """
    photo = os.path.abspath(photo)
    if root is None and ledger is not None:
        # Where the ledger recorded writing it: right whatever the run's roots were (two roots share a mirror).
        written = ledger.files.sidecar_written(
            os.fsencode(os.path.dirname(photo)), os.fsencode(os.path.basename(photo))
        )
        if written is not None:
            return os.fsdecode(os.path.dirname(written))
        known = ledger.files.root_of(os.fsencode(os.path.dirname(photo)), os.fsencode(os.path.basename(photo)))
        root = os.fsdecode(known) if known is not None else None
    root = root or walked_from
    if root is None:
        raise UsageError(
            f"{photo}: the ledger does not know it, so its place in the sidecar_dir mirror is unknown; "
            "pass --root (the folder you gave `tagger run`)"
        )
    try:
        return sidecar_folder(photo, sidecar_dir=os.path.abspath(sidecar_dir), root=os.path.abspath(root))
    except ValueError as exc:
        raise UsageError(f"{exc}: pass as --root the folder you gave `tagger run`") from None
