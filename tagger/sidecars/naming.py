"""Where an image's sidecar lives: full or base-name form, beside it or in a mirror tree."""

from __future__ import annotations

import functools
import logging
import os

from tagger.display import display
from tagger.prepare.formats import RAW_EXTENSIONS, is_image_name

__all__ = ["sidecar_path_for", "sidecar_folder", "clear_listing_cache", "folder_listing"]

log = logging.getLogger("tagger.sidecars.write")


@functools.lru_cache(maxsize=512)
def folder_listing(folder: str) -> frozenset[str]:
    """The names in ``folder``, listed once per run (cached).

    10,000 images in a folder must not mean 10,000 listings.
    """
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


@functools.lru_cache(maxsize=512)
def _images_by_stem(folder: str) -> dict[str, tuple[str, ...]]:
    stems: dict[str, list[str]] = {}
    for name in folder_listing(folder):
        if is_image_name(name):
            stems.setdefault(os.path.splitext(name)[0], []).append(name)
    return {stem: tuple(sorted(names)) for stem, names in stems.items()}


def clear_listing_cache() -> None:
    """Forget cached folder listings (call when the tree changed under a long-lived process)."""
    _images_by_stem.cache_clear()
    folder_listing.cache_clear()


def _base_form_is_mine(folder: str, name: str) -> bool:
    """True when ``stem.xmp`` can only mean this image (or its RAW+rendition pair)."""
    stem = os.path.splitext(name)[0]
    group = set(_images_by_stem(folder).get(stem, ())) | {name}
    if len(group) == 1:
        return True
    if len(group) == 2:
        raws = [n for n in group if os.path.splitext(n)[1].lower() in RAW_EXTENSIONS]
        return len(raws) == 1
    return False


def sidecar_folder(
    image_path: str, *, sidecar_dir: str | None = None, root: str | None = None, per_root: bool = False
) -> str:
    """The folder that holds ``image_path``'s sidecar: its own, or its place in the mirror of ``root`` under ``sidecar_dir``.

    ``per_root`` (a run over several roots): the mirror starts at the root's
    own absolute path under ``sidecar_dir`` (``/a/photos`` mirrors to
    ``sidecar_dir/a/photos/...``), so ``A/IMG_0001.JPG`` and ``B/IMG_0001.JPG``
    get two sidecars, not one. Otherwise it starts at ``sidecar_dir`` itself,
    the layout a single root has always had.
    """
    image_dir = os.path.dirname(image_path)
    if sidecar_dir is None:
        return image_dir
    if root is None:
        raise ValueError("sidecar_dir needs root, so that the tree can be mirrored")
    rel = os.path.relpath(image_dir or os.curdir, root)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        raise ValueError(f"{display(image_path)} is not under root {display(root)}")
    if per_root:
        label = os.path.splitdrive(os.path.abspath(root))[1].lstrip(os.sep + (os.altsep or ""))
        return os.path.normpath(os.path.join(sidecar_dir, label, rel))
    return os.path.normpath(os.path.join(sidecar_dir, rel))


def sidecar_path_for(
    image_path: str,
    *,
    naming: str = "full",
    sidecar_dir: str | None = None,
    root: str | None = None,
    per_root: bool = False,
) -> str:
    """The sidecar path for ``image_path`` under the naming rule ("full" or "basename"); see ``sidecar_folder``."""
    if naming not in ("full", "basename"):
        raise ValueError(f"naming must be 'full' or 'basename', not {naming!r}")
    image_dir, name = os.path.split(image_path)
    target_dir = sidecar_folder(image_path, sidecar_dir=sidecar_dir, root=root, per_root=per_root)
    full = name + ".xmp"
    base = os.path.splitext(name)[0] + ".xmp"
    present = folder_listing(target_dir or os.curdir)
    mine = _base_form_is_mine(image_dir or os.curdir, name)

    if naming == "full":
        chosen = base if (full not in present and base in present and mine) else full
    elif not mine:
        log.warning(
            "%s shares its base name with another image; using %s instead of %s",
            display(image_path),
            display(full),
            display(base),
        )
        chosen = full
    else:
        chosen = full if (base not in present and full in present) else base
    return os.path.join(target_dir, chosen)
