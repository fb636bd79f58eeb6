"""What an image already carries: its embedded XMP packet, IPTC-IIM and EXIF text fields.

Read from the file's headers only (no pixels are decoded) and never
written. JPEG, TIFF, PNG, WebP, HEIC/HEIF/AVIF (with pillow-heif) and
TIFF-based RAW (DNG, NEF, ARW) are understood; anything else reads as
empty. A damaged block is skipped, never fatal: the worst case is a
sidecar that copies less, never a failed file.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import struct
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

from tagger.prepare.formats import SNIFF_BYTES, is_classic_tiff, register_heif, sniff
from tagger.prepare.tiff import TiffReader

__all__ = ["ImageMetadata", "read_image_metadata", "read_metadata_of", "remember", "is_boilerplate", "BOILERPLATE"]

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger("tagger.prepare.embedded")

#: Texts cameras put into EXIF ImageDescription when the user wrote none: not a description.
#: gThumb's ``useless_comment_filter`` (extensions/exiv2_tools/exiv2-utils.cpp: OLYMPUS, SONY DSC,
#: KONICA MINOLTA, MINOLTA, "binary comment") plus the other makers' fixed strings seen in the wild.
#: Kept to whole camera phrases: a short word a user might really have written never counts.
BOILERPLATE = frozenset(
    s.casefold()
    for s in (
        "OLYMPUS DIGITAL CAMERA",
        "SONY DSC",
        "KONICA MINOLTA DIGITAL CAMERA",
        "MINOLTA DIGITAL CAMERA",
        "binary comment",
        "DIGITAL CAMERA",
        "SAMSUNG DIGITAL CAMERA",
        "KODAK DIGITAL STILL CAMERA",
        "PENTAX DIGITAL CAMERA",
        "SANYO DIGITAL CAMERA",
        "AGFA DIGITAL CAMERA",
        "EXIF_JPEG_PICTURE",
    )
)

# EXIF tags (IFD0) read as user text.
_IMAGE_DESCRIPTION, _ARTIST, _COPYRIGHT, _RATING = 0x010E, 0x013B, 0x8298, 0x4746
_XP = {0x9C9B: "XPTitle", 0x9C9C: "XPComment", 0x9C9D: "XPAuthor", 0x9C9E: "XPKeywords"}
_XMP_TAG, _IPTC_TAG = 700, 33723
# IPTC-IIM record 2 datasets this module maps (exiftool names).
_IIM = {5: "ObjectName", 25: "Keywords", 80: "By-line", 116: "CopyrightNotice", 120: "Caption-Abstract"}


def is_boilerplate(text: str | None) -> bool:
    """True for an empty, blank or camera-written ImageDescription such as ``OLYMPUS DIGITAL CAMERA``."""
    stripped = " ".join((text or "").replace("\x00", " ").split())
    return not stripped or stripped.casefold() in BOILERPLATE


@dataclass(frozen=True)
class ImageMetadata:
    """The image's own metadata as read: the XMP packet's bytes and the IPTC/EXIF text fields."""

    xmp: bytes | None = None
    iptc: dict[str, tuple[str, ...]] = field(default_factory=dict)
    exif: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing at all was found."""
        return not (self.xmp or self.iptc or self.exif)


def read_image_metadata(path: str) -> ImageMetadata:
    """The metadata embedded in the image at ``path`` (empty when it has none or cannot be read).

    What a first run's ``read_once`` already read from these very bytes (see
    ``remember``) is not read again.
    """
    known = _recall(path)
    if known is not None:
        return known
    try:
        with _open_regular(path) as f:
            return _read(f)
    except Exception as exc:
        log.debug("%s: no embedded metadata read (%s)", path, exc)
        return ImageMetadata()


def _open_regular(path: str) -> BinaryIO:
    """Open a photo for reading, refusing what is not a regular file (a FIFO put in its place would block for ever)."""
    # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; fstat then refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file any more")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_metadata_of(data: bytes, name: str) -> ImageMetadata:
    """``read_image_metadata`` of a file already read into memory."""
    try:
        return _read(io.BytesIO(data))
    except Exception as exc:
        log.debug("%s: no embedded metadata read (%s)", name, exc)
        return ImageMetadata()


def _read(f: BinaryIO) -> ImageMetadata:
    head = f.read(SNIFF_BYTES)
    kind = sniff(head)
    if kind == "heif":
        register_heif()
    if is_classic_tiff(head):  # TIFF, DNG, NEF, ARW, CR2: read IFD0 without asking Pillow to open the pixels
        f.seek(0)
        return _from_tiff(f)
    f.seek(0)
    from PIL import Image  # here: a run that reads no photo (a nightly no-op) never imports Pillow

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns on odd tag types; they are skipped below
        with Image.open(f) as img:
            return _from_pillow(img)


# -- what a read already found: path -> (size, mtime_ns, metadata), the oldest dropped first ---------------
_MEMO_BYTES = 32 << 20  # the packets kept, at most (an entry past it is read again from its file)
_memo: OrderedDict[str, tuple[int, int, ImageMetadata, int]] = OrderedDict()  # ..., its weight
_memo_size = 0
_memo_lock = threading.Lock()


def _weight(metadata: ImageMetadata) -> int:
    return 256 + len(metadata.xmp or b"") + len(repr(metadata.iptc)) + len(repr(metadata.exif))


def remember(path: str, size: int, mtime_ns: int, metadata: ImageMetadata) -> None:
    """Keep what was read from ``path`` at this size and mtime, for the one ``read_image_metadata`` that follows."""
    global _memo_size
    with _memo_lock:
        old = _memo.pop(path, None)
        if old is not None:
            _memo_size -= old[3]
        weight = _weight(metadata)
        _memo[path] = (size, mtime_ns, metadata, weight)
        _memo_size += weight
        while _memo_size > _MEMO_BYTES and _memo:
            _memo_size -= _memo.popitem(last=False)[1][3]


def _recall(path: str) -> ImageMetadata | None:
    global _memo_size
    with _memo_lock:
        kept = _memo.pop(path, None)
        if kept is not None:
            _memo_size -= kept[3]
    if kept is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    # Another app rewrote the file since it was read: read it again.
    return kept[2] if (st.st_size, st.st_mtime_ns) == kept[:2] else None


def _from_pillow(img: Image.Image) -> ImageMetadata:
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    exif = _exif_fields(dict(img.getexif()))
    iptc: dict[str, tuple[str, ...]] = {}
    photoshop = img.info.get("photoshop")
    if isinstance(photoshop, dict) and isinstance(photoshop.get(0x0404), bytes):
        iptc = _parse_iim(photoshop[0x0404])
    return ImageMetadata(bytes(xmp) if xmp else None, iptc, exif)


def _from_tiff(f) -> ImageMetadata:
    """IFD0 of a TIFF-based file, parsed without asking Pillow to understand its pixels (DNG, NEF...)."""
    from PIL import TiffImagePlugin

    first = TiffReader(f).first
    f.seek(0)
    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=f.read(8))
    f.seek(first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ifd.load(f)
        # Raw bytes for the two blocks: Pillow's typed decoding truncates a LONG-typed IPTC chunk.
        raw = getattr(ifd, "_tagdata", {})
        tags = {tag: raw[tag] for tag in (_XMP_TAG, _IPTC_TAG) if tag in raw}
        for tag in (_IMAGE_DESCRIPTION, _ARTIST, _COPYRIGHT, _RATING, *_XP):
            if tag in ifd.tagtype:
                try:
                    tags[tag] = ifd[tag]
                except Exception:
                    continue
    xmp = tags.pop(_XMP_TAG, None)
    raw_iptc = tags.pop(_IPTC_TAG, None)
    iptc: dict[str, tuple[str, ...]] = {}
    if raw_iptc is not None:
        iptc = _parse_iim(_as_bytes(raw_iptc))
    return ImageMetadata((_as_bytes(xmp) or None) if xmp is not None else None, iptc, _exif_fields(tags))


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    if isinstance(value, (tuple, list)):
        if all(isinstance(v, int) for v in value):
            # LONG-typed IPTC chunks (Photoshop writes them so): the words are the bytes.
            if any(v > 255 for v in value):
                return b"".join(struct.pack(">I", v) for v in value)
            return bytes(value)
        return b"".join(_as_bytes(v) for v in value)
    return b""


def _exif_fields(tags: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for tag, name in ((_IMAGE_DESCRIPTION, "ImageDescription"), (_ARTIST, "Artist"), (_COPYRIGHT, "Copyright")):
        value = tags.get(tag)
        if isinstance(value, bytes):
            value = _decode(value)
        if isinstance(value, str) and value.strip("\x00 \t\r\n"):
            out[name] = value.replace("\x00", " ").strip()
    rating = tags.get(_RATING)
    if isinstance(rating, int) and 0 <= rating <= 5:
        out["Rating"] = str(rating)
    for tag, name in _XP.items():
        value = tags.get(tag)
        if value is None:
            continue
        text = _as_bytes(value).decode("utf-16-le", "replace").split("\x00", 1)[0].strip()
        if text:
            out[name] = text
    return out


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _parse_iim(data: bytes) -> dict[str, tuple[str, ...]]:
    """IPTC-IIM datasets of record 2 this module maps, decoded (UTF-8 when 1:90 says so, else guessed)."""
    values: dict[str, list[bytes]] = {}
    utf8 = False
    pos = 0
    while pos + 5 <= len(data):
        if data[pos] != 0x1C:
            pos += 1  # padding between datasets
            continue
        record, dataset = data[pos + 1], data[pos + 2]
        (length,) = struct.unpack(">H", data[pos + 3 : pos + 5])
        pos += 5
        if length & 0x8000:  # extended length: the next (length & 0x7fff) bytes hold it
            n = length & 0x7FFF
            length = int.from_bytes(data[pos : pos + n], "big")
            pos += n
        chunk = data[pos : pos + length]
        pos += length
        if record == 1 and dataset == 90:
            utf8 = chunk in (b"\x1b%G", b"\x1b%/I")
        elif record == 2 and dataset in _IIM:
            values.setdefault(_IIM[dataset], []).append(chunk)
    decode = (lambda b: b.decode("utf-8", "replace")) if utf8 else _decode
    out: dict[str, tuple[str, ...]] = {}
    for name, chunks in values.items():
        texts = tuple(t for t in (decode(c).replace("\x00", "").strip() for c in chunks) if t)
        if texts:
            out[name] = texts
    return out
