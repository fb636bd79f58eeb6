"""Reading a sidecar: its bytes and identity, its packet, the fields tagger manages, and the photo's own metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tagger.atomic import LINK_REASON
from tagger.display import display
from tagger.errors import SidecarError
from tagger.prepare.embedded import ImageMetadata, is_boilerplate, read_image_metadata
from tagger.sidecars import xmp as _xmp
from tagger.sidecars.mwg import image_packet
from tagger.sidecars.provenance import Prov, read_provenance
from tagger.sidecars.xmp import DC, DIGIKAM, IPTC_CORE, LR, TIFF, XMP, Packet

__all__ = [
    "DESCRIPTION",
    "ALT_TEXT",
    "IMAGE_DESCRIPTION",
    "SUBJECT",
    "HIERARCHICAL",
    "TAGS",
    "METADATA_DATE",
    "LISTS",
    "MANAGED",
    "State",
    "Photo",
    "read_state",
    "parse_sidecar",
    "snapshot",
    "target",
    "sidecar_provenance",
]

DESCRIPTION = f"{{{DC}}}description"
ALT_TEXT = f"{{{IPTC_CORE}}}AltTextAccessibility"
IMAGE_DESCRIPTION = f"{{{TIFF}}}ImageDescription"
SUBJECT = f"{{{DC}}}subject"
HIERARCHICAL = f"{{{LR}}}hierarchicalSubject"
TAGS = f"{{{DIGIKAM}}}TagsList"
METADATA_DATE = f"{{{XMP}}}MetadataDate"
#: The keyword lists as (field, property, separator): "" is the flat dc:subject.
LISTS = (("subject", SUBJECT, ""), ("hierarchical", HIERARCHICAL, "|"), ("tags", TAGS, "/"))
#: Every property whose value tagger decides.
MANAGED = (DESCRIPTION, ALT_TEXT, IMAGE_DESCRIPTION, SUBJECT, HIERARCHICAL, TAGS)


@dataclass
class State:
    """The managed fields of one packet and tagger's provenance in it."""

    description: list[tuple[str, str]]
    alt_text: list[tuple[str, str]]
    image_description: list[tuple[str, str]]
    subject: list[str]
    hierarchical: list[str]
    tags: list[str]
    prov: Prov


def read_state(packet: Packet) -> State:
    """The managed fields and provenance ``packet`` holds."""
    alt, values = _xmp.lang_alt, _xmp.values
    return State(
        alt(packet, DESCRIPTION),
        alt(packet, ALT_TEXT),
        alt(packet, IMAGE_DESCRIPTION),
        values(packet, SUBJECT),
        values(packet, HIERARCHICAL),
        values(packet, TAGS),
        read_provenance(packet),
    )


class Photo:
    """The photo's own metadata, read at most once and only when a decision needs it."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._meta: ImageMetadata | None = None
        self._packet: Packet | None = None

    @property
    def meta(self) -> ImageMetadata:
        """The photo's embedded XMP, IPTC and EXIF (empty without a photo)."""
        if self._meta is None:
            self._meta = read_image_metadata(self.path) if self.path else ImageMetadata()
        return self._meta

    def packet(self) -> Packet:
        """The photo's metadata as a packet: a fresh copy each call (callers modify it)."""
        return image_packet(self.meta)

    def state(self) -> State:
        """The managed fields the photo itself carries."""
        if self._packet is None:
            self._packet = self.packet()
        return read_state(self._packet)

    def has_boilerplate_description(self) -> bool:
        """True when the photo's EXIF ImageDescription is camera boilerplate."""
        value = self.meta.exif.get("ImageDescription")
        return value is not None and is_boilerplate(value)

    def owner(self) -> tuple[int, int] | None:
        """The photo's owner and group, None without a photo or when it cannot be read."""
        if not self.path:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_uid, st.st_gid

    def mode(self) -> int | None:
        """The photo's permission bits, None without a photo or when it cannot be read."""
        if not self.path:
            return None
        try:
            return os.stat(self.path).st_mode & 0o7777
        except OSError:
            return None


def parse_sidecar(path: str, data: bytes | None) -> Packet:
    """``data`` (a sidecar's bytes, None when absent) as a packet; SidecarError names ``path``."""
    if data is None:
        return _xmp.new_packet()
    try:
        return _xmp.parse(data)
    except _xmp.XmpFormatError as exc:
        raise SidecarError(f"{display(path)}: {exc}; left as it was") from None


def snapshot(path: str) -> tuple[bytes | None, tuple | None]:
    """The sidecar's bytes and identity (inode, size, mtime, ctime, owner, group, mode), or (None, None) when absent."""
    try:
        # O_NOFOLLOW: a sidecar that is a symbolic link is not read through (it may point anywhere).
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        if os.path.islink(path):
            raise SidecarError(f"{display(path)}: {LINK_REASON}") from None
        raise SidecarError(f"{display(path)}: cannot read ({exc.strerror or exc})") from None
    return data, (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_uid, st.st_gid, st.st_mode)


def target(path: str) -> str:
    """``path`` itself, refused (SidecarError) when it is a symbolic link: tagger never writes through a link.

    tagger runs as root over folders others write to: a link planted where
    a sidecar goes could make it create or change a file anywhere.
    """
    if os.path.islink(path):
        raise SidecarError(f"{display(path)}: {LINK_REASON}")
    return path


def sidecar_provenance(path: str) -> Prov:
    """What tagger recorded in the sidecar at ``path`` (its ``tagger:`` fields); empty when there is none or it is unreadable."""
    try:
        data, _ = snapshot(path)
        return read_provenance(parse_sidecar(path, data)) if data is not None else {}
    except SidecarError:
        return {}
