"""What ``exiftool -csv=`` should write into a photo so that it ends as the sidecar merge decides.

exiftool's CSV import leaves a tag alone when its cell is empty, replaces
it when the cell holds text, and replaces a whole list (``XMP-dc:Subject``,
``IPTC:Keywords``) with the cell's items. So each cell says what the photo
should end with, or nothing: the photo's own description stays (camera
boilerplate aside, which the caption writes over, as in a sidecar), its
keywords are kept and tagger's added after them, and title, creator and
rights are never in the file. The decisions are ``decide_fields``'s, taken
against the photo's own metadata as the Metadata Working Group reads it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from tagger.sidecars.fields import SidecarContent, decide_fields
from tagger.sidecars.read import Photo

__all__ = ["Embedding", "embedding_for"]


@dataclass(frozen=True)
class Embedding:
    """The cells for one photo; None leaves that tag as the photo has it."""

    description: str | None = None
    subject: tuple[str, ...] | None = None
    alt_text: str | None = None
    image_description: str | None = None  # EXIF ImageDescription, only over camera boilerplate
    iptc_keywords: tuple[str, ...] | None = None  # only where the photo already carries IPTC keywords


def _key(value: str) -> str:
    return unicodedata.normalize("NFC", value).casefold()


def _joined(first: Iterable[str], then: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in (*first, *then):
        seen.setdefault(_key(value), value)
    return tuple(seen.values())


def embedding_for(path: str, caption: str, keywords: Iterable[str], *, locale: str = "en-US") -> Embedding:
    """The exiftool cells for the photo at ``path`` given tagger's ``caption`` and ``keywords``."""
    photo = Photo(path)
    old = photo.state()
    content = SidecarContent(caption=caption, keywords=tuple(keywords), token="", endpoint="", status="completed")
    new = decide_fields(old, content, False, "", photo)

    def x_default(items: list[tuple[str, str]]) -> str:
        return dict(items).get("x-default", "")

    description = x_default(new.description)
    alt_text = x_default(new.alt_text)
    subject = tuple(new.subject)
    exif_description = photo.meta.exif.get("ImageDescription")
    added = [k for k in subject if _key(k) not in {_key(v) for v in old.subject}]
    iptc = tuple(photo.meta.iptc.get("Keywords", ()))
    iptc_after = _joined(iptc, added) if iptc else ()
    ours = description if description and description != x_default(old.description) else None
    return Embedding(
        description=ours,
        subject=subject if subject and [_key(k) for k in subject] != [_key(k) for k in old.subject] else None,
        alt_text=alt_text if alt_text and alt_text != x_default(old.alt_text) else None,
        # Only where the caption became the description: boilerplate beside a user's description stays, as in a sidecar.
        image_description=ours if ours and exif_description and photo.has_boilerplate_description() else None,
        iptc_keywords=iptc_after if iptc and iptc_after != iptc else None,
    )
