"""Atomic file replacement: a temporary file beside the target, fsync, rename, fsync the folder.

The one atomic-write helper of the package: sidecars, exports and the
contact sheet all go through ``atomic_write`` (``atomic_text`` for text).
A crash leaves either the old file or the new one, never half of either.

Nothing here follows a symbolic link tagger did not make: the folder is
opened once and every name in it is reached through that descriptor; the
temporary file is created with ``O_EXCL | O_NOFOLLOW``, given its owner and
mode by descriptor, and renamed over a target that is refused when it is a
symbolic link (``LinkRefused``). tagger runs as root over folders other
people write to: a link planted where a sidecar goes must not make it
create or hand over a file anywhere else.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import IO, BinaryIO, TypeVar

from tagger.errors import ExportError

__all__ = [
    "atomic_write",
    "atomic_text",
    "fsync_dir",
    "remove_leftovers",
    "TargetChanged",
    "LinkRefused",
    "LINK_REASON",
    "reset_owner_notices",
]

T = TypeVar("T")

log = logging.getLogger("tagger.atomic")

#: The reason a path that is a symbolic link is not written.
LINK_REASON = "is a symbolic link; left alone"

#: Names longer than this (in bytes) get a short temporary name: the name plus its suffix must fit NAME_MAX (255).
_LONG_NAME = 200

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FDS = os.open in os.supports_dir_fd and os.replace in os.supports_dir_fd

#: Owners a sidecar could not be given, already reported this run (each is said once).
_owner_notices: set[tuple[int, int]] = set()


class TargetChanged(Exception):
    """``atomic_write``'s precondition failed: the target changed meanwhile; nothing was replaced."""


class LinkRefused(OSError):
    """The target is a symbolic link: tagger leaves it (and what it points to) alone."""

    def __init__(self, path: str) -> None:
        super().__init__(errno.ELOOP, LINK_REASON, path)


def reset_owner_notices() -> None:
    """Forget which unassignable owners were reported (a new run reports each once again)."""
    _owner_notices.clear()


def fsync_dir(folder: str) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    with suppress(OSError):  # not every filesystem lets a directory be fsynced
        fd = os.open(folder or os.curdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _stem(base: str) -> str:
    """The part of a temporary name that says whose it is: the name, or a digest of a long one."""
    raw = os.fsencode(base)
    if len(raw) <= _LONG_NAME:
        return base
    # A 234-byte name plus ".<12 hex>.tmp" would pass NAME_MAX and the sidecar would never be written.
    return "~" + hashlib.blake2b(raw, digest_size=10, person=b"tagger-tmpname").hexdigest()


def _temporary_names(path: str) -> tuple[str, re.Pattern[str]]:
    stem = _stem(os.path.basename(path))
    return f".{stem}.{secrets.token_hex(6)}.tmp", re.compile(re.escape(f".{stem}.") + r"[0-9a-f]{12}\.tmp")


def _open_folder(folder: str) -> int:
    return os.open(folder or os.curdir, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)


def remove_leftovers(path: str, names: Iterable[str] | None = None, *, dir_fd: int | None = None) -> int:
    """Delete temporary files a killed writer of ``path`` left beside it; returns how many.

    ``names`` is the folder's listing when the caller has one (a sidecar
    writer lists each folder once per run); otherwise the folder is scanned.
    ``dir_fd``: the folder, already open (names are then removed through it).
    """
    folder = os.path.dirname(path) or os.curdir
    _, pattern = _temporary_names(path)
    removed = 0
    try:
        listing = list(names) if names is not None else os.listdir(dir_fd if dir_fd is not None else folder)
    except OSError:
        return 0
    for name in listing:
        if pattern.fullmatch(name):
            with suppress(OSError):
                if dir_fd is not None and _DIR_FDS:
                    os.unlink(name, dir_fd=dir_fd)
                else:
                    os.unlink(os.path.join(folder, name))
                removed += 1
    return removed


def _chown(fd: int, path: str, owner: tuple[int, int]) -> None:
    """Give the just-created file behind ``fd`` to ``owner`` as far as possible; say once when it cannot be done."""
    uid, gid = owner
    try:
        os.fchown(fd, uid, gid)
        return
    except PermissionError:
        # Not root: the group alone may still be ours to give (a member of it); else keep ours.
        with suppress(PermissionError):
            os.fchown(fd, -1, gid)
        return
    except OSError as exc:
        # An owner this machine cannot map (a NAS user id in a user namespace, an NFS id): the file
        # stays tagger's, and is still written; the run says so once per owner.
        if owner not in _owner_notices:
            _owner_notices.add(owner)
            log.warning(
                "cannot give %s to user %d, group %d (%s); it and others like it keep tagger's owner",
                os.fsdecode(path),
                uid,
                gid,
                exc.strerror or exc,
            )


def _existing(name: str, folder: str, dfd: int) -> os.stat_result | None:
    """The target's own status (a link is not followed), None when absent."""
    try:
        if _DIR_FDS:
            return os.stat(name, dir_fd=dfd, follow_symlinks=False)
        return os.lstat(os.path.join(folder, name))
    except FileNotFoundError:
        return None


def atomic_write(
    path: str,
    write: Callable[[BinaryIO], T],
    *,
    mode: int | None = None,
    listing: Iterable[str] | None = None,
    owner: tuple[int, int] | None = None,
    precondition: Callable[[], bool] | None = None,
    readable_as: int | None = None,
) -> T:
    """Replace ``path`` with what ``write`` writes to a binary file; returns its result.

    ``mode`` sets the new file's permission bits; None keeps the existing
    file's, or gives a new file the usual 0o666 less the umask, without the
    group and other bits ``readable_as`` (a photo's mode) lacks: a sidecar is
    never more readable than its photo. ``owner`` (uid, gid) is given to the
    new file as far as the process may (all of it as root), by descriptor.
    ``precondition`` runs just before the rename; when it returns False
    nothing is replaced and TargetChanged is raised (the window left is the
    rename itself). A target that is a symbolic link raises LinkRefused and is
    left alone. OSError propagates after the temporary file is removed. A
    SIGKILL cannot run that clean-up, so temporary files an earlier writer of
    ``path`` left behind are removed first (``listing``: the folder's names,
    if known).
    """
    folder = os.path.dirname(path) or os.curdir
    base = os.path.basename(path)
    dfd = _open_folder(folder)
    try:
        return _write_in(dfd, folder, base, path, write, mode, listing, owner, precondition, readable_as)
    finally:
        os.close(dfd)


def _write_in(
    dfd: int,
    folder: str,
    base: str,
    path: str,
    write: Callable[[BinaryIO], T],
    mode: int | None,
    listing: Iterable[str] | None,
    owner: tuple[int, int] | None,
    precondition: Callable[[], bool] | None,
    readable_as: int | None,
) -> T:
    before = _existing(base, folder, dfd)
    if before is not None and stat.S_ISLNK(before.st_mode):
        raise LinkRefused(path)
    if mode is None and before is not None:
        mode = stat.S_IMODE(before.st_mode)
    name, _ = _temporary_names(path)
    remove_leftovers(path, listing, dir_fd=dfd)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC
    if _DIR_FDS:
        fd = os.open(name, flags, 0o666, dir_fd=dfd)
    else:
        fd = os.open(os.path.join(folder, name), flags, 0o666)

    def unlink_tmp() -> None:
        with suppress(OSError):
            if _DIR_FDS:
                os.unlink(name, dir_fd=dfd)
            else:
                os.unlink(os.path.join(folder, name))

    try:
        with os.fdopen(fd, "wb") as f:
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
            # Owner and mode by descriptor: only the file just created here is ever handed over.
            if owner is not None:
                _chown(f.fileno(), path, owner)
            if mode is None and readable_as is not None:
                created = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
                mode = created & (0o7700 | (readable_as & 0o077))
            if mode is not None:
                os.fchmod(f.fileno(), mode)  # after chown, which may clear set-id bits
        if precondition is not None and not precondition():
            raise TargetChanged(path)
        now = _existing(base, folder, dfd)
        if now is not None and stat.S_ISLNK(now.st_mode):
            raise LinkRefused(path)  # planted since: renaming would cut someone's link
        if _DIR_FDS:
            os.replace(name, base, src_dir_fd=dfd, dst_dir_fd=dfd)
        else:
            os.replace(os.path.join(folder, name), path)
    except BaseException:
        unlink_tmp()
        raise
    with suppress(OSError):
        os.fsync(dfd)
    return result


def atomic_text(dest: str, write: Callable[[IO[str]], int]) -> int:
    """Run ``write`` on a UTF-8 text file that atomically replaces ``dest``."""

    def text(raw: BinaryIO) -> int:
        # errors="replace": a lone surrogate from an undecodable name becomes "?", not a crash.
        out = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        try:
            count = write(out)
            out.flush()
        finally:
            out.detach()  # atomic_write closes the file itself
        return count

    try:
        # An export is meant to be shared: 0o644 unless the file it replaces had other bits.
        mode = None if os.path.lexists(dest) else 0o644
        return atomic_write(os.path.abspath(dest), text, mode=mode)
    except OSError as exc:
        raise ExportError(
            f"cannot write {dest}: {exc.strerror or exc}"
            + ("" if isinstance(exc, LinkRefused) else "; check the folder exists and is writable")
        ) from exc
