"""Photo-like scenes, their copies (resized, re-encoded, converted, rotated) and their near look-alikes.

A *scene* is a landscape-like picture drawn from a seed: a sky gradient, a
horizon, hills, textured ground, and objects (trees, houses, blobs, a sun)
with noise and a slight blur, so its statistics are closer to a photograph's
than a flat test card. ``lookalike`` keeps the palette, sky, horizon and hills
(the colours and the layout) and draws other objects; ``variant`` keeps the
whole scene and changes a few objects, as when someone walks into the frame.
``window`` cuts distinct photos out of the real sample images.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

__all__ = ["scene", "lookalike", "variant", "window", "copies", "crops", "save", "album", "COPIES", "SAMPLES"]

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"


def _palette(rnd: random.Random) -> list[tuple[int, int, int]]:
    return [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(6)]


def _layout(seed: int, size: tuple[int, int]) -> tuple[Image.Image, random.Random, list[tuple[int, int, int]], int]:
    """Sky, horizon, hills and ground: the colours and layout of a scene."""
    rnd = random.Random(seed)
    w, h = size
    palette = _palette(rnd)
    top, bottom = palette[0], palette[1]
    sky = Image.linear_gradient("L").resize((w, h))
    im = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), sky)
    draw = ImageDraw.Draw(im)
    horizon = int(h * rnd.uniform(0.4, 0.7))
    for _hill in range(rnd.randrange(1, 4)):
        peak_x, peak_y = rnd.uniform(0, w), horizon - rnd.uniform(0.05, 0.25) * h
        spread = rnd.uniform(0.2, 0.6) * w
        colour = tuple(max(0, c - rnd.randrange(0, 60)) for c in palette[2])
        draw.polygon([(peak_x - spread, horizon), (peak_x, peak_y), (peak_x + spread, horizon)], fill=colour)
    draw.rectangle((0, horizon, w, h), fill=palette[3])
    return im, rnd, palette, horizon


def _objects(
    im: Image.Image, rnd: random.Random, palette: list[tuple[int, int, int]], horizon: int, count: int
) -> None:
    w, h = im.size
    draw = ImageDraw.Draw(im)
    for _ in range(count):
        kind = rnd.random()
        colour = tuple(min(255, max(0, c + rnd.randrange(-50, 50))) for c in rnd.choice(palette[2:]))
        x, y = rnd.uniform(0, w), rnd.uniform(horizon - 0.1 * h, h)
        s = rnd.uniform(0.03, 0.15) * w
        if kind < 0.35:  # a tree
            draw.rectangle((x - s * 0.08, y - s * 0.5, x + s * 0.08, y), fill=(90, 60, 30))
            draw.polygon([(x - s * 0.4, y - s * 0.4), (x, y - s * 1.5), (x + s * 0.4, y - s * 0.4)], fill=colour)
        elif kind < 0.6:  # a house
            draw.rectangle((x - s * 0.5, y - s * 0.6, x + s * 0.5, y), fill=colour)
            draw.polygon([(x - s * 0.6, y - s * 0.6), (x, y - s), (x + s * 0.6, y - s * 0.6)], fill=palette[5])
            draw.rectangle((x - s * 0.1, y - s * 0.3, x + s * 0.1, y), fill=(40, 30, 20))
        elif kind < 0.9:  # a blob: a bush, a rock, a person far away
            draw.ellipse((x - s * 0.5, y - s * 0.4, x + s * 0.5, y + s * 0.1), fill=colour)
        else:  # a sun or a cloud in the sky
            y = rnd.uniform(0, horizon * 0.7)
            draw.ellipse((x - s * 0.4, y - s * 0.4, x + s * 0.4, y + s * 0.4), fill=(250, 240, 200))


def _finish(im: Image.Image, seed: int) -> Image.Image:
    w, h = im.size
    noise = Image.frombytes("L", (w, h), random.Random(seed ^ 0x5EED).randbytes(w * h)).convert("RGB")
    im = Image.blend(im, noise, 0.12)
    return im.filter(ImageFilter.GaussianBlur(0.8))


def scene(seed: int, size: tuple[int, int] = (1600, 1200)) -> Image.Image:
    """A landscape-like photo drawn from ``seed``."""
    im, rnd, palette, horizon = _layout(seed, size)
    _objects(im, rnd, palette, horizon, rnd.randrange(6, 20))
    return _finish(im, seed)


def lookalike(seed: int, other: int, size: tuple[int, int] = (1600, 1200)) -> Image.Image:
    """Scene ``seed``'s colours and layout (sky, horizon, hills, ground) with other objects in it."""
    im, rnd, palette, horizon = _layout(seed, size)
    count = rnd.randrange(6, 20)
    _objects(im, random.Random(other * 7919 + 1), palette, horizon, count)
    return _finish(im, seed)


def variant(seed: int, changed: int, size: tuple[int, int] = (1600, 1200)) -> Image.Image:
    """Scene ``seed`` with ``changed`` objects added, as when someone steps into the frame."""
    im, rnd, palette, horizon = _layout(seed, size)
    _objects(im, rnd, palette, horizon, rnd.randrange(6, 20))
    _objects(im, random.Random(seed * 104729 + changed), palette, horizon, changed)
    return _finish(im, seed)


def window(seed: int, size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """A photo cut out of one of the real sample images: a random window, scaled up to ``size``."""
    rnd = random.Random(seed)
    names = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".jpg", ".png"))
    with Image.open(rnd.choice(names)) as src:
        from PIL import ImageOps

        src = ImageOps.exif_transpose(src).convert("RGB")
        w, h = src.size
        scale = rnd.uniform(0.35, 0.8)
        cw = int(w * scale)
        ch = min(h, int(cw * size[1] / size[0]))
        x, y = rnd.randrange(0, w - cw + 1), rnd.randrange(0, h - ch + 1)
        return src.crop((x, y, x + cw, y + ch)).resize(size, Image.Resampling.BICUBIC)


def save(im: Image.Image, fmt: str, **kwargs) -> bytes:
    """``im`` encoded as ``fmt`` (JPEG, PNG, WEBP, HEIF), in memory."""
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    out = io.BytesIO()
    im.save(out, fmt, **kwargs)
    return out.getvalue()


def _rotated(im: Image.Image, orientation: int) -> bytes:
    """The same pixels stored turned, with the EXIF Orientation that turns them upright again."""
    stored = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(im.transpose(stored), "JPEG", quality=92, exif=exif)


def copies(im: Image.Image) -> dict[str, bytes]:
    """The copies that must share ``im``'s caption: resized, re-encoded, converted, EXIF-rotated."""
    w, h = im.size
    out = {
        "half.jpg": save(
            im.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "JPEG", quality=85
        ),  # 25 % of the pixels
        "web2048.jpg": save(im.resize((2048, round(2048 * h / w)), Image.Resampling.BICUBIC), "JPEG", quality=80)
        if w < 2048
        else save(im, "JPEG", quality=80),
        "q50.jpg": save(im, "JPEG", quality=50),
        "q95.jpg": save(im, "JPEG", quality=95),
        "png.png": save(im, "PNG"),
        "webp.webp": save(im, "WEBP", quality=80),
        "heic.heic": save(im, "HEIF", quality=60),
        "rot6.jpg": _rotated(im, 6),
        "rot8.jpg": _rotated(im, 8),
        "rot3.jpg": _rotated(im, 3),
        "messenger.jpg": save(im.resize((1280, round(1280 * h / w)), Image.Resampling.BILINEAR), "JPEG", quality=60),
    }
    return out


def crops(im: Image.Image) -> dict[str, bytes]:
    """Crops that change what is in the frame; the first two keep the aspect ratio (scaled back up)."""
    w, h = im.size

    def cut(box: tuple[float, float, float, float], keep_size: bool) -> bytes:
        part = im.crop(tuple(round(v) for v in (box[0] * w, box[1] * h, box[2] * w, box[3] * h)))
        if keep_size:
            part = part.resize((w, h), Image.Resampling.LANCZOS)
        return save(part, "JPEG", quality=90)

    return {
        "crop90_centre.jpg": cut((0.05, 0.05, 0.95, 0.95), True),
        "crop80_corner.jpg": cut((0.0, 0.0, 0.8, 0.8), True),
        "crop_left_side.jpg": cut((0.15, 0.0, 1.0, 1.0), False),
        "crop_square.jpg": cut((0.125, 0.0, 0.875, 1.0), False),
    }


# An album: an original beside its copies, a look-alike and crops.

COPIES = (
    "half.jpg",
    "q50.jpg",
    "q95.jpg",
    "png.png",
    "webp.webp",
    "heic.heic",
    "rot6.jpg",
    "rot8.jpg",
    "messenger.jpg",
)


def album(root: Path, seed: int = 3) -> dict[str, Path]:
    """An original, its copies, a look-alike and two crops, in two folders."""
    im = scene(seed)
    files = {"original.jpg": save(im, "JPEG", quality=92)}
    files.update({name: data for name, data in copies(im).items() if name in COPIES})
    files["lookalike.jpg"] = save(lookalike(seed, seed + 100), "JPEG", quality=92)
    cut = crops(im)
    files["crop90_centre.jpg"] = cut["crop90_centre.jpg"]
    files["crop_left_side.jpg"] = cut["crop_left_side.jpg"]
    paths = {}
    for i, (name, data) in enumerate(files.items()):
        path = root / ("web" if i % 2 else "camera") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    return paths
