"""Small JPEG thumbnails for the contact sheet, made fast and kept within a byte budget."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from PIL import Image, ImageOps

from tagger.prepare.formats import register_heif

__all__ = ["thumbnail_jpeg", "thumbnails", "budget_for"]

# Tried in order until the thumbnail fits its budget; low qualities still read
# well at 160 px, and the page's size is what makes 10,000 cards usable.
_QUALITIES = (60, 45, 34, 25)
_SHRINK = (1.0, 0.75, 0.5)


def budget_for(edge: int) -> int:
    """Bytes one thumbnail may take: 4 KB at a 160 px edge, scaled with the area."""
    return max(1536, int(4096 * (edge / 160) ** 2))


def _encode(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def thumbnail_jpeg(path: str, edge: int = 160, budget: int | None = None) -> bytes | None:
    """A JPEG of ``path`` fitting ``edge`` px, upright, within ``budget`` bytes; None if unreadable."""
    register_heif()
    budget = budget_for(edge) if budget is None else budget
    try:
        with Image.open(path) as src:
            # JPEG decodes at 1/2..1/8 scale straight away: the main cost saved.
            src.draft("RGB", (edge, edge))
            img = ImageOps.exif_transpose(src)
            img.thumbnail((edge, edge), Image.Resampling.BILINEAR, reducing_gap=2.0)
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                img = Image.new("RGB", rgba.size, (255, 255, 255))
                img.paste(rgba, mask=rgba.getchannel("A"))
            elif img.mode != "RGB":
                img = img.convert("RGB")
            data = b""
            for shrink in _SHRINK:
                sized = (
                    img
                    if shrink == 1.0
                    else img.resize(
                        (max(1, round(img.width * shrink)), max(1, round(img.height * shrink))),
                        Image.Resampling.BILINEAR,
                    )
                )
                for quality in _QUALITIES:
                    data = _encode(sized, quality)
                    if len(data) <= budget:
                        return data
            return data
    except Exception:
        return None


def thumbnails(paths: Iterable[str], edge: int, workers: int | None = None) -> Iterator[bytes | None]:
    """Thumbnails of ``paths`` in order, made on a few threads (Pillow decodes without the GIL)."""
    workers = workers or min(8, os.cpu_count() or 1)
    chunk: list[str] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # Work in chunks so finished thumbnails never pile up in memory.
        for path in paths:
            chunk.append(path)
            if len(chunk) >= 64:
                yield from pool.map(lambda p: thumbnail_jpeg(p, edge), chunk)
                chunk = []
        if chunk:
            yield from pool.map(lambda p: thumbnail_jpeg(p, edge), chunk)
