"""Output paths checked against the inputs they would destroy, before anything is written or sent.

A CSV or contact sheet pointed at a photo overwrote the photo; ``tagger
export --csv`` pointed at the ledger destroyed the ledger. ``refuse_clobber``
refuses (UsageError, exit 2) an output that is the ledger or one of its
companion files, a sidecar, a photo (an existing file that is an image), or
a file inside a scanned root that the next run would scan. Paths are
compared resolved and, for files that exist, by device and inode (a hard
link is the same file).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tagger.errors import UsageError
from tagger.prepare.formats import SNIFF_BYTES, is_image_name, sniff

__all__ = ["refuse_clobber", "LEDGER_COMPANIONS"]

#: The files a ledger lives in: the database, SQLite's journals, tagger's lock, the token journal.
LEDGER_COMPANIONS = ("", "-wal", "-shm", "-journal", ".lock", ".tokens")


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_photo(path: str) -> bool:
    """True for an existing file that is an image, by name or by its first bytes."""
    if not os.path.isfile(path):
        return False
    if is_image_name(os.path.basename(path)):
        return True
    try:
        with open(path, "rb") as f:
            return sniff(f.read(SNIFF_BYTES)) is not None
    except OSError:
        return False


def _under(real: str, folder: str) -> bool:
    return real == folder or real.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_clobber(dest: str | None, *, option: str, ledger: str | None = None, roots: Sequence[str] = ()) -> None:
    """Raise UsageError when writing ``dest`` (given as ``option``) would destroy an input; "-" and None pass."""
    if not dest or dest == "-":
        return
    real = os.path.realpath(os.path.expanduser(dest))
    ident = _identity(real)
    if ledger and ledger != ":memory:":
        ledger_real = os.path.realpath(os.path.expanduser(ledger))
        for suffix in LEDGER_COMPANIONS:
            companion = ledger_real + suffix
            if real == companion or (ident is not None and ident == _identity(companion)):
                raise UsageError(
                    f"{option} {dest} is the ledger{' (' + suffix + ')' if suffix else ''}; give another file"
                )
        # Kept beside the ledger too: the built-in emulator's state and the review page's thumbnails.
        emulator_state = os.path.splitext(ledger_real)[0] + ".emulator.sqlite"
        if real in (emulator_state, emulator_state + "-wal", emulator_state + "-shm") or real.startswith(
            ledger_real + ".thumbs" + os.sep
        ):
            raise UsageError(f"{option} {dest} is a file tagger keeps beside the ledger; give another file")
    if os.path.splitext(real)[1].lower() == ".xmp":
        raise UsageError(f"{option} {dest} would overwrite a sidecar; give a file that does not end in .xmp")
    if _is_photo(real):
        raise UsageError(f"{option} {dest} is a photo; it would be overwritten: give another file")
    if not roots:
        return
    from tagger.pipeline.scan import NOT_IMAGES  # only a run has roots (and has loaded the pipeline)

    ext = os.path.splitext(real)[1].lower()
    for root in roots:
        root_real = os.path.realpath(os.path.expanduser(root))
        if os.path.isdir(root_real) and _under(real, root_real) and (ext not in NOT_IMAGES or is_image_name(real)):
            raise UsageError(
                f"{option} {dest} is inside the scanned folder {root}, where the next run would scan it; "
                "give a .csv or .html name, or a file outside it"
            )
