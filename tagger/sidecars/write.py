"""XMP sidecars: write captions and keywords where every photo app reads them, and undo it.

SidecarError            a sidecar exists but cannot be read, parsed or written;
                        the file is left exactly as it was.

Apps that find a sidecar read it instead of the image's own metadata
(darktable, digiKam, Immich field by field). So a sidecar tagger creates
starts as a copy of the image's metadata (``mwg.image_packet``), and a
description the user wrote anywhere (the image, the sidecar, any language)
is never shadowed: tagger's caption then goes only to its own namespace and
the alt text. Where tagger writes a description, the first caption is the
``x-default`` and every later language gets its own ``xml:lang`` (darktable
reads all alternatives as one text, so a copy of x-default under its
language would show twice). Camera boilerplate (``OLYMPUS DIGITAL CAMERA``)
is not a description: tagger writes over it and, when the image carries it
as EXIF ImageDescription, also as ``tiff:ImageDescription`` (Immich shows
that first). A keyword field tagger adds is seeded with the user's keywords
from the other fields, so a reader stopping at it misses none.

Everything tagger did is recorded in its namespace (``tagger:``,
``https://tagger.invalid/ns/1.0/``): ``wrote*``/``replaced*`` hold the texts
it put in each language slot and what boilerplate it replaced, ``added*``
its keywords, ``seeded*`` the copies of the user's keywords in fields tagger
created, ``imageCopy`` a digest of the copy a new sidecar started from.
``strip_sidecar`` removes exactly that (seeded copies included: the user
did not have those fields) and deletes a sidecar tagger created once only
the copy of the image's metadata is left.

The parts: ``read`` (the file, its packet, the managed fields, the
photo's metadata), ``provenance`` (the ``tagger:`` record), ``fields``
(what each field becomes), ``repair`` (legacy sidecars rebuilt on the
photo's metadata), ``merge`` (the atomic merge against concurrent
editors). This module puts them together.
"""

from __future__ import annotations

import os
from datetime import datetime

from tagger.atomic import fsync_dir
from tagger.display import display, utc_stamp
from tagger.errors import SidecarError
from tagger.sidecars import xmp as _xmp
from tagger.sidecars.fields import SidecarContent, decide_fields, leaves_nothing, undo_fields
from tagger.sidecars.merge import MERGE_ATTEMPTS, apply_fields, merge_loop

# Looked up here at each write, not bound in the steps: a test saves the file between encoding and renaming.
from tagger.sidecars.merge import encode as _encode
from tagger.sidecars.naming import clear_listing_cache, sidecar_path_for
from tagger.sidecars.provenance import ALT_TEXT_LIMIT, read_provenance
from tagger.sidecars.read import METADATA_DATE, Photo, State, parse_sidecar, read_state, sidecar_provenance
from tagger.sidecars.read import target as sidecar_target
from tagger.sidecars.repair import repair_legacy

__all__ = [
    "SidecarContent",
    "SidecarError",
    "sidecar_path_for",
    "clear_listing_cache",
    "write_sidecar",
    "strip_sidecar",
    "read_provenance",
    "sidecar_provenance",
    "parse_sidecar",
    "ALT_TEXT_LIMIT",
]


def write_sidecar(
    path: str,
    content: SidecarContent,
    *,
    hierarchy_parent: str = "CloudSight",
    now: datetime | None = None,
    image: str | None = None,
    attempts: int = MERGE_ATTEMPTS,
) -> bool:
    """Create or merge the sidecar at ``path``; False when nothing changed (file not touched).

    ``image`` is the photo's path: a new sidecar starts as a copy of its
    metadata and gets its owner and group, and its description and keywords
    count as the user's.
    """
    target = sidecar_target(path)
    photo = Photo(image)

    def step(before: bytes | None):
        packet = parse_sidecar(path, before)
        existed = before is not None
        fresh = before is None or not before.strip()
        old = read_state(packet)
        digest = None
        if fresh:
            # Apps read a sidecar instead of the image: it must start with what the image carries.
            packet = photo.packet()
            copied = read_state(packet)
            old = State(
                copied.description,
                copied.alt_text,
                copied.image_description,
                copied.subject,
                copied.hierarchical,
                copied.tags,
                {},
            )
            if not existed:
                digest = _xmp.packet_digest(packet, skip=(METADATA_DATE,))
        elif photo.path and old.prov.get("createdFile") == "True" and not old.prov.get("imageCopy"):
            # Created by a tagger that did not copy the image yet: it hides the photo's own metadata.
            prov = old.prov
            packet, digest = repair_legacy(packet, photo)
            old = read_state(packet)
            old.prov = prov  # tagger's record stays: it says which texts and keywords were its own
        new = decide_fields(old, content, existed, hierarchy_parent, photo)
        if digest is not None:
            new.prov["imageCopy"] = digest
        if new == old and not fresh and digest is None:
            return None
        apply_fields(packet, new, utc_stamp(now))
        return _encode(packet, path), lambda: None

    return merge_loop(path, step, target, photo, attempts)


def strip_sidecar(path: str, *, attempts: int = MERGE_ATTEMPTS) -> str:
    """Undo what tagger wrote: "unchanged", "updated", "deleted" (tagger created it) or "absent"."""
    target = sidecar_target(path)
    if not os.path.lexists(target):
        return "absent"
    outcome = ["unchanged"]

    def step(before: bytes | None):
        if before is None:
            outcome[0] = "absent"
            return None
        packet = parse_sidecar(path, before)
        old = read_state(packet)
        prov = old.prov
        if not prov:
            outcome[0] = "unchanged"
            return None
        dates = _xmp.values(packet, METADATA_DATE)
        apply_fields(packet, undo_fields(old), dates[0] if dates else None)
        if prov.get("createdFile") == "True" and leaves_nothing(packet, str(prov.get("imageCopy", "")) or None):

            def delete() -> None:
                try:
                    os.unlink(target)
                except OSError as exc:
                    raise SidecarError(f"{display(path)}: cannot delete ({exc.strerror or exc})") from None
                fsync_dir(os.path.dirname(target) or os.curdir)
                outcome[0] = "deleted"

            return b"", delete
        outcome[0] = "updated"
        return _encode(packet, path), lambda: None

    merge_loop(path, step, target, Photo(None), attempts)
    return outcome[0]
