"""Merging into a sidecar another app may be editing: decided fields into the packet, then an atomic replace.

``merge_loop`` reads the sidecar, lets a step decide on what it read, and
replaces the file only if it is still what was read; when another app saved
it meanwhile, the step decides again on what that app wrote (a bounded
number of times, then SidecarError and the file left as it was).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence

from tagger.atomic import LINK_REASON, LinkRefused, TargetChanged, atomic_write
from tagger.display import display
from tagger.errors import SidecarError
from tagger.sidecars import xmp as _xmp
from tagger.sidecars.naming import folder_listing
from tagger.sidecars.provenance import PROV_ALTS, PROV_FIELDS, tagger_names
from tagger.sidecars.read import (
    ALT_TEXT,
    DESCRIPTION,
    HIERARCHICAL,
    IMAGE_DESCRIPTION,
    METADATA_DATE,
    SUBJECT,
    TAGS,
    Photo,
    State,
    snapshot,
)
from tagger.sidecars.xmp import TAGGER, Packet

__all__ = ["MERGE_ATTEMPTS", "Step", "apply_fields", "encode", "merge_loop"]

#: Bounded re-reads when another app saves the sidecar while tagger merges into it.
MERGE_ATTEMPTS = 5

#: Decides on the sidecar's bytes (None: absent): None to leave it, or the bytes to write (b"": delete)
#: and what to do once they are in place.
Step = Callable[[bytes | None], "tuple[bytes, Callable[[], None]] | None"]


def apply_fields(packet: Packet, state: State, metadata_date: str | None) -> None:
    """Write ``state`` into the packet: managed properties where they stand, new ones and tagger's in one Description."""
    for name in tagger_names(packet):
        _xmp.remove_property(packet, name)
    for element, declared in packet.decls.items():
        # tagger's namespace goes with its last property; nothing else can use it.
        if any(uri == TAGGER for _, uri in declared):
            packet.decls[element] = [(p, u) for p, u in declared if u != TAGGER]
    appended: list[tuple[str, str, Sequence[tuple[str | None, str]]]] = []
    items: Sequence[tuple[str | None, str]]
    for name, kind, items in (
        (DESCRIPTION, "Alt", list(state.description)),
        (ALT_TEXT, "Alt", list(state.alt_text)),
        (IMAGE_DESCRIPTION, "Alt", list(state.image_description)),
        (SUBJECT, "Bag", [(None, v) for v in state.subject]),
        (HIERARCHICAL, "Bag", [(None, v) for v in state.hierarchical]),
        (TAGS, "Seq", [(None, v) for v in state.tags]),
        (METADATA_DATE, "", [(None, metadata_date or "")]),
    ):
        items = [(lang, text) for lang, text in items if text]
        existing = _xmp.property_kind(packet, name)
        if kind in ("Bag", "Seq") and existing in ("Bag", "Seq"):
            kind = existing  # a dc:subject written as Seq stays a Seq
        if not _xmp.set_property(packet, name, kind, items) and items:
            appended.append((name, kind, items))
    for local in PROV_FIELDS:
        value = state.prov.get(local)
        if local in PROV_ALTS and value:
            appended.append((f"{{{TAGGER}}}{local}", "Alt", list(value)))  # type: ignore[arg-type]
        elif isinstance(value, tuple) and value:
            appended.append((f"{{{TAGGER}}}{local}", "Bag", [(None, v) for v in value]))  # type: ignore[misc]
        elif value:
            appended.append((f"{{{TAGGER}}}{local}", "", [(None, value)]))  # type: ignore[list-item]
    if appended:
        _xmp.append_description(packet, appended)


def encode(packet: Packet, path: str) -> bytes:
    """``packet`` serialised, refused (SidecarError) unless it parses back."""
    data = _xmp.serialise(packet).encode("utf-8")
    try:
        _xmp.parse(data)  # never replace a good file with one we cannot read back
    except _xmp.XmpFormatError as exc:
        raise SidecarError(f"{display(path)}: refusing to write a broken packet ({exc})") from None
    return data


def _replace(target: str, path: str, data: bytes, before: bytes | None, ident: tuple | None, image: Photo) -> None:
    """Atomically put ``data`` at ``target`` unless it changed since it was read (TargetChanged)."""
    readable_as = None
    owner: tuple[int, int] | None
    if ident is not None:
        mode, owner = stat.S_IMODE(ident[6]), (ident[4], ident[5])  # the sidecar keeps its own
    else:
        mode, owner = None, image.owner()  # a new sidecar belongs to the photo's owner and group
        # ... and is never more readable than the photo: its metadata (GPS too) is copied into it.
        readable_as = image.mode()

    def unchanged() -> bool:
        now_data, now_ident = snapshot(target)
        return now_ident == ident and now_data == before

    try:
        folder = os.path.dirname(target) or os.curdir
        os.makedirs(folder, exist_ok=True)
        atomic_write(
            target,
            lambda f: f.write(data),
            mode=mode,
            owner=owner,
            precondition=unchanged,
            listing=folder_listing(folder),
            readable_as=readable_as,
        )
    except LinkRefused:
        raise SidecarError(f"{display(path)}: {LINK_REASON}") from None
    except OSError as exc:
        raise SidecarError(f"{display(path)}: cannot write ({exc.strerror or exc})") from None


def merge_loop(path: str, step: Step, target: str, image: Photo, attempts: int) -> bool:
    """Run ``step`` on the sidecar at ``target`` until its result lands on an unchanged file; False: ``step`` left it."""
    for _ in range(attempts):
        before, ident = snapshot(target)
        result = step(before)
        if result is None:
            return False
        data, after = result
        try:
            if data:
                _replace(target, path, data, before, ident, image)
            elif snapshot(target) != (before, ident):
                continue  # changed before the delete: decide again on what is there now
            after()
        except TargetChanged:
            continue  # another app saved the sidecar meanwhile: merge into what it wrote
        return True
    raise SidecarError(f"{display(path)}: kept changing while tagger merged into it ({attempts} tries); left as it was")
