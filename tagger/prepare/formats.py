"""Which files are images: by extension, or by their first bytes; and the one HEIF registration.

The one table of image formats: the extensions a scan considers, the magic
bytes ``sniff`` reads, and ``register_heif`` (pillow-heif, the optional
``heic`` extra) that every decoder of the package goes through.
"""

from __future__ import annotations

import threading

__all__ = [
    "IMAGE_EXTENSIONS",
    "RAW_EXTENSIONS",
    "HEIF_EXTENSIONS",
    "SNIFF_BYTES",
    "is_image_name",
    "sniff",
    "register_heif",
]

RAW_EXTENSIONS = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})
IMAGE_EXTENSIONS = (
    frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp", ".gif", ".bmp"})
    | RAW_EXTENSIONS
    | HEIF_EXTENSIONS
)

#: How many leading bytes ``sniff`` needs.
SNIFF_BYTES = 16

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"BM", "bmp"),
)


def is_image_name(name: str) -> bool:
    """True when the file name's extension is one tagger handles."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


_RAW_MAGIC: tuple[bytes, ...] = (
    b"FUJIFILMCCD-RAW",  # RAF
    b"IIRO",  # Olympus ORF
    b"IIRS",
    b"MMOR",
    b"IIU\x00",  # Panasonic RW2
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis", b"heim", b"heis"})


def sniff(head: bytes) -> str | None:
    """The format the first bytes announce ("raw" for camera RAW), or None when they are not an image.

    NEF, ARW and DNG files are plain TIFF at the start and sniff as "tiff".
    """
    if head.startswith(_RAW_MAGIC) or (head[:4] == b"II*\x00" and head[8:10] == b"CR"):
        return "raw"
    if head[4:8] == b"ftyp" and head[8:12] == b"crx ":
        return "raw"  # Canon CR3
    for offset, magic, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            # "BM" alone is too weak: the two reserved header words must be zero.
            if kind == "bmp" and head[6:10] != b"\x00\x00\x00\x00":
                return None
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


_heif_lock = threading.Lock()
_heif_state: bool | None = None  # None: not tried yet


def register_heif() -> bool:
    """Register pillow-heif's opener with Pillow once per process; False when the ``heic`` extra is not installed."""
    global _heif_state
    with _heif_lock:
        if _heif_state is None:
            try:
                import pillow_heif
            except ImportError:
                _heif_state = False
            else:
                pillow_heif.register_heif_opener()
                _heif_state = True
        return _heif_state
