"""What a run leaves out: gitignore-style patterns, NAS and OS thumbnail and trash folders, tagger's own outputs.

Patterns are matched (by ``pathspec``, as git does) against each path
relative to the PATH the run was given, folders with a trailing slash: a
pattern ``@eaDir/`` leaves out every ``@eaDir`` folder at any depth, and
``!@eaDir/`` after it takes them back. An excluded folder is not entered at
all, so nothing under it is read, paid for or given a sidecar.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import pathspec

from tagger.errors import UsageError

__all__ = ["DEFAULT_EXCLUDES", "Excludes", "check_patterns"]

#: Left out of every run, before the user's patterns (which may take one back with "!").
DEFAULT_EXCLUDES = (
    "@eaDir/",  # Synology's thumbnails and index files
    "\\#recycle/",  # Synology's recycle bin ("#" would start a comment)
    ".Trash-*/",  # freedesktop trash on removable and network drives
    ".thumbnails/",  # freedesktop thumbnail cache
    ".@__thumb/",  # QNAP's thumbnails
)


def _spec(patterns: Iterable[str]) -> pathspec.PathSpec:
    return pathspec.GitIgnoreSpec.from_lines(list(patterns))


def check_patterns(patterns: Iterable[str]) -> list[str]:
    """A sentence for each pattern that cannot be used (empty when all can)."""
    problems = []
    for pattern in patterns:
        try:
            _spec([pattern])
        except Exception as exc:  # pathspec raises several kinds for a malformed pattern
            problems.append(f"exclude pattern {pattern!r} cannot be used: {exc}")
    return problems


@dataclass
class Excludes:
    """The patterns of one run and the folders it writes to; counts what it left out."""

    patterns: tuple[str, ...] = ()
    own_folders: tuple[str, ...] = ()  # tagger's outputs (a --sidecar-dir inside a PATH): never captioned
    defaults: bool = True
    folders_left_out: int = 0
    files_left_out: int = 0
    _spec: pathspec.PathSpec = field(init=False, repr=False)
    _own: frozenset[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._spec = _spec([*(DEFAULT_EXCLUDES if self.defaults else ()), *self.patterns])
        except Exception as exc:
            raise UsageError(f"an exclude pattern cannot be used: {exc}") from None
        self._own = frozenset(os.path.abspath(os.fsencode(p)).rstrip(b"/") for p in self.own_folders if p)

    @property
    def left_out(self) -> int:
        """Folders and files left out (a folder counts once, whatever it holds)."""
        return self.folders_left_out + self.files_left_out

    def folder(self, root: bytes, path: bytes) -> bool:
        """Whether the folder ``path`` (under ``root``) is left out; counted when it is."""
        if path.rstrip(b"/") in self._own or self._spec.match_file(_relative(root, path) + "/"):
            self.folders_left_out += 1
            return True
        return False

    def file(self, root: bytes, path: bytes) -> bool:
        """Whether the file ``path`` (under ``root``) is left out; counted when it is."""
        if self._spec.match_file(_relative(root, path)):
            self.files_left_out += 1
            return True
        return False


def _relative(root: bytes, path: bytes) -> str:
    # surrogateescape (fsdecode): a name that is not UTF-8 is still matched, byte for byte, by ASCII patterns.
    return os.fsdecode(os.path.relpath(path, root))
