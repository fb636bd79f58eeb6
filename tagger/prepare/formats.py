"""Which files are images: by extension, or by their first bytes; and the one HEIF registration.

The one table of image formats: the extensions a scan considers, the
signatures (magic bytes) and the predicates every other module asks instead
of testing bytes itself, ``sniff`` (is this an image, and which kind: scans
and the decoder), ``structure`` (which structure reader the content hasher
uses), and ``register_heif`` (pillow-heif, the optional ``heic`` extra) that
every decoder of the package goes through.

Where each format goes: ``hashing`` picks a ``hash_*`` module by
``structure`` (TIFF directories through ``tiff``); ``decode`` opens by
``sniff`` (RAW with LibRaw after ``tiff.data_extent``, the rest with Pillow);
``embedded`` reads TIFF-based files' own directory (``tiff``) and asks
Pillow for the rest.
"""

from __future__ import annotations

import threading

__all__ = [
    "IMAGE_EXTENSIONS",
    "RAW_EXTENSIONS",
    "HEIF_EXTENSIONS",
    "SNIFF_BYTES",
    "JPEG_SOI",
    "PNG_SIGNATURE",
    "GIF_SIGNATURES",
    "TIFF_LE",
    "TIFF_BE",
    "RAF_MAGIC",
    "TIFF_CLASSIC_MAGICS",
    "BIGTIFF_MAGIC",
    "is_image_name",
    "sniff",
    "structure",
    "is_jpeg",
    "is_png",
    "is_gif",
    "is_webp",
    "is_bmff",
    "is_avif",
    "is_raf",
    "is_classic_tiff",
    "tiff_magic",
    "is_tiff_like",
    "register_heif",
]

RAW_EXTENSIONS = frozenset({".cr2", ".cr3", ".nef", ".arw", ".dng", ".raf", ".orf", ".rw2"})
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".avif"})
IMAGE_EXTENSIONS = (
    frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".webp", ".gif", ".bmp"})
    | RAW_EXTENSIONS
    | HEIF_EXTENSIONS
)

#: How many leading bytes ``sniff`` and ``structure`` need.
SNIFF_BYTES = 16

# -- the signatures: the one place in tagger that knows a format's first bytes -------------------------
JPEG_SOI = b"\xff\xd8"  # start of image; a JPEG's first marker segment follows (``\xff`` again)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
TIFF_LE, TIFF_BE = b"II*\x00", b"MM\x00*"  # classic TIFF, little- and big-endian
RAF_MAGIC = b"FUJIFILMCCD-RAW"
#: The 16-bit word after a TIFF byte order mark: classic TIFF (42), Olympus ORF ("RO", "RS"), Panasonic RW2
#: (0x55) and BigTIFF (43, 8-byte offsets). All of them open a TIFF directory structure.
TIFF_CLASSIC_MAGICS = frozenset({42, 0x4F52, 0x5352, 0x55})
BIGTIFF_MAGIC = 43

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, JPEG_SOI + b"\xff", "jpeg"),
    (0, PNG_SIGNATURE, "png"),
    (0, GIF_SIGNATURES[0], "gif"),
    (0, GIF_SIGNATURES[1], "gif"),
    (0, TIFF_LE, "tiff"),
    (0, TIFF_BE, "tiff"),
    (0, b"BM", "bmp"),
)
_RAW_MAGIC: tuple[bytes, ...] = (
    RAF_MAGIC,  # RAF
    b"IIRO",  # Olympus ORF
    b"IIRS",
    b"MMOR",
    b"IIU\x00",  # Panasonic RW2
)
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis", b"heim", b"heis"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})


def is_image_name(name: str) -> bool:
    """True when the file name's extension is one tagger handles."""
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in IMAGE_EXTENSIONS


def sniff(head: bytes) -> str | None:
    """The format the first bytes announce ("raw" for camera RAW), or None when they are not an image.

    NEF, ARW and DNG files are plain TIFF at the start and sniff as "tiff".
    """
    if head.startswith(_RAW_MAGIC) or (head[:4] == TIFF_LE and head[8:10] == b"CR"):
        return "raw"
    if is_bmff(head) and head[8:12] == b"crx ":
        return "raw"  # Canon CR3
    for offset, magic, kind in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            # "BM" alone is too weak: the two reserved header words must be zero.
            if kind == "bmp" and head[6:10] != b"\x00\x00\x00\x00":
                return None
            return kind
    if is_webp(head):
        return "webp"
    if is_bmff(head) and head[8:12] in _HEIF_BRANDS:
        return "heif"
    return None


def structure(head: bytes) -> str | None:
    """Which structure reader the content hasher gives these first bytes, or None (pixels, else the whole file).

    Looser than ``sniff`` on purpose (a JPEG needs only its SOI, any ``ftyp``
    is ISO media, BigTIFF counts): the identity of every file ever hashed
    depends on this choice, so it never changes. "bmp" means the whole file.
    """
    if is_jpeg(head):
        return "jpeg"
    if is_png(head):
        return "png"
    if is_raf(head):
        return "raf"
    if is_tiff_like(head):
        return "tiff"
    if is_webp(head):
        return "webp"
    if is_gif(head):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if is_bmff(head):
        return "bmff"
    return None


def is_jpeg(head: bytes) -> bool:
    """Whether the first bytes are a JPEG start-of-image marker."""
    return head[:2] == JPEG_SOI


def is_png(head: bytes) -> bool:
    """Whether the first bytes are the PNG signature."""
    return head[:8] == PNG_SIGNATURE


def is_gif(head: bytes) -> bool:
    """Whether the first bytes are a GIF signature."""
    return head[:6] in GIF_SIGNATURES


def is_webp(head: bytes) -> bool:
    """Whether the first bytes open a RIFF WebP file."""
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def is_bmff(head: bytes) -> bool:
    """Whether the first bytes open an ISO base media file (``ftyp`` first): HEIF, AVIF, CR3, or a video."""
    return head[4:8] == b"ftyp"


def is_avif(head: bytes) -> bool:
    """Whether an ISO media file's major brand is AVIF."""
    return head[8:12] in _AVIF_BRANDS


def is_raf(head: bytes) -> bool:
    """Whether the first bytes are a Fujifilm RAF header."""
    return head.startswith(RAF_MAGIC)


def is_classic_tiff(head: bytes) -> bool:
    """Whether the first bytes are a classic TIFF header (``II*\\0`` or ``MM\\0*``), as DNG, NEF, ARW and CR2 have."""
    return head[:4] in (TIFF_LE, TIFF_BE)


def tiff_magic(head: bytes) -> tuple[str, int] | None:
    """The struct byte order ("<" or ">") and 16-bit magic after a TIFF byte order mark; None without one."""
    if head[:2] not in (b"II", b"MM") or len(head) < 8:
        return None
    order = "<" if head[:2] == b"II" else ">"
    return order, int.from_bytes(head[2:4], "little" if order == "<" else "big")


def is_tiff_like(head: bytes) -> bool:
    """Whether the first bytes open a TIFF directory structure: TIFF, BigTIFF, ORF, RW2 and the TIFF-based RAWs."""
    found = tiff_magic(head)
    return found is not None and (found[1] in TIFF_CLASSIC_MAGICS or found[1] == BIGTIFF_MAGIC)


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
