"""Rebuild sample_images/ from the scikit-image and matplotlib wheels' bundled data.

Usage: python bench/make_sample_images.py WHEEL_DIR
WHEEL_DIR holds the unzipped wheels (``sk/`` = scikit-image, ``mpl/`` = matplotlib),
made with ``pip download --no-deps scikit-image matplotlib`` and ``unzip``.
Only images whose licence allows redistribution (public domain / CC0) are taken;
see sample_images/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from PIL import Image

from tagger.emulator._vision import build_catalog

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sample_images"

# (output name, path inside the unzipped wheels)
SOURCES = [
    ("astronaut.jpg", "sk/skimage/data/astronaut.png"),
    ("chelsea.jpg", "sk/skimage/data/chelsea.png"),
    ("coffee.jpg", "sk/skimage/data/coffee.png"),
    ("rocket.jpg", "sk/skimage/data/rocket.jpg"),
    ("hubble_deep_field.jpg", "sk/skimage/data/hubble_deep_field.jpg"),
    ("grace_hopper.jpg", "mpl/matplotlib/mpl-data/sample_data/grace_hopper.jpg"),
    ("camera.png", "sk/skimage/data/camera.png"),
    ("clock.jpg", "sk/skimage/data/clock_motion.png"),
    ("retina.jpg", "sk/skimage/data/retina.jpg"),
    ("brick.jpg", "sk/skimage/data/brick.png"),
    ("grass.jpg", "sk/skimage/data/grass.png"),
    ("gravel.jpg", "sk/skimage/data/gravel.png"),
]
# What a person would write for each picture; the emulator answers these
# for uploads that match the picture (tagger/emulator/catalog.json).
CAPTIONS = {
    "astronaut.jpg": "astronaut in an orange spacesuit with her helmet beside her, in front of an American flag",
    "chelsea.jpg": "close-up of a tabby cat's face",
    "coffee.jpg": "cup of espresso on a red saucer with a spoon on a wooden table",
    "rocket.jpg": "rocket on a launch pad at dusk between lightning towers",
    "hubble_deep_field.jpg": "many small galaxies against a black sky, Hubble deep field",
    "grace_hopper.jpg": "portrait of an older woman in a navy uniform and cap in front of an American flag",
    "camera.png": "black and white photo of a man filming with a camera on a tripod in a park",
    "clock.jpg": "motion-blurred wall clock on a grey wall",
    "retina.jpg": "photograph of the back of a human eye showing the retina and blood vessels",
    "brick.jpg": "grey brick wall seen at an angle",
    "grass.jpg": "close-up of grass, black and white",
    "gravel.jpg": "close-up of grey gravel",
}
# This one is stored rotated with EXIF Orientation 6, so viewers (and
# ImageOps.exif_transpose) must turn it to show it upright.
ROTATED = "coffee.jpg"
LONG_EDGE = 1024


def main(wheels: Path) -> None:
    """Write every sample image into sample_images/."""
    OUT.mkdir(exist_ok=True)
    for name, rel in SOURCES:
        with Image.open(wheels / rel) as src:
            image = src.convert("L" if src.mode in ("L", "I;16") else "RGB")
        if max(image.size) > LONG_EDGE:
            image.thumbnail((LONG_EDGE, LONG_EDGE), Image.Resampling.LANCZOS)
        target = OUT / name
        if name.endswith(".png"):
            image.save(target, optimize=True)
        elif name == ROTATED:
            exif = Image.Exif()
            exif[0x0112] = 6
            # Orientation 6 means "rotate 90 degrees clockwise to display", so
            # the stored pixels are the upright picture turned counter-clockwise.
            image.transpose(Image.Transpose.ROTATE_90).save(target, quality=90, exif=exif)
        else:
            image.save(target, quality=90)
        print(f"{name}: {image.size} {target.stat().st_size // 1024} KB")
    catalog = ROOT / "tagger" / "emulator" / "catalog.json"
    text = json.dumps(build_catalog(OUT, CAPTIONS), indent=2) + "\n"
    temporary = catalog.with_suffix(".json.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, catalog)
    print(f"wrote {catalog.relative_to(ROOT)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1].split("\n", 1)[1]
    )
    parser.add_argument("wheel_dir", type=Path, help="the unzipped wheels (sk/ = scikit-image, mpl/ = matplotlib)")
    main(parser.parse_args().wheel_dir)
