"""Turn any image a photo archive holds into a small, metadata-free JPEG for upload.

``prepare(path)`` reads the file once into memory (noticing if it changes
meanwhile), decodes it by content with the JPEG decoder shrinking in the DCT
domain, converts colour to sRGB, applies the EXIF orientation and encodes a
baseline JPEG that carries none of the original's metadata. ``Preparer`` runs
it in the calling thread or in a pool of processes that enforces a time limit.
``read_once(path)`` is the first run's form: one read yields both the file's
content hash and, if the caller wants this content sent, the upload.
Every failure is a ``PrepareError`` whose ``reason`` a person can read.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from tagger.errors import PrepareError, cannot_read
from tagger.prepare.embedded import ImageMetadata, read_metadata_of
from tagger.prepare.fingerprint import Fingerprint, fingerprint
from tagger.prepare.hashing import content_hash, content_hash_of
from tagger.prepare.options import PrepareOptions
from tagger.prepare.workers import AskFailed, CallTimeout, Cancelled, KillablePool, WorkerDied

__all__ = [
    "PrepareOptions",
    "Prepared",
    "PrepareError",
    "Cancelled",
    "prepare",
    "read_once",
    "OneRead",
    "SEND",
    "LINK",
    "KEEP",
    "read_image",
    "prepare_data",
    "Preparer",
]


@dataclass(frozen=True)
class Prepared:
    """A baseline RGB JPEG with no metadata, its size, the GPS location when asked for, its fingerprint."""

    data: bytes
    width: int
    height: int
    location: tuple[float, float, float | None] | None
    fingerprint: Fingerprint | None = None  # of the decoded upright pixels, for reusing a similar photo's caption


def prepare(path: str, options: PrepareOptions = PrepareOptions()) -> Prepared:
    """Prepare the image at ``path`` for upload; raises PrepareError only."""
    return prepare_data(read_image(path), os.path.basename(path), options)


@dataclass(frozen=True)
class OneRead:
    """What one read of a new file gave: the upload (when its content is to be sent) and its own metadata."""

    prepared: Prepared | None
    metadata: ImageMetadata | None  # when ``read_metadata``: what its sidecar will copy, read from the same bytes
    read_as: tuple[int, int]  # (size, mtime_ns) of the file those bytes were


#: What ``read_once``'s question may be answered: prepare the content (it is to be sent), only read the
#: metadata its sidecar will copy (it links to a known caption), or nothing more.
SEND, LINK, KEEP = "send", "link", "keep"


def read_once(path: str, options: PrepareOptions, ask: Callable[[str], str]) -> OneRead:
    """Hash and prepare a new file from one read of its bytes.

    ``ask(content_hash)`` is asked once, between the two: ``SEND`` means
    this content is to be sent (prepare it); ``LINK`` that it is not (its
    caption is known, or another file of the same content is being sent),
    but a new sidecar will copy its metadata; ``KEEP`` that nothing else is
    needed (a metadata edit: its sidecar is as written). Nothing is decoded
    unless sent. Raises PrepareError only (``ask``'s own exceptions pass through).
    """
    data, size, mtime_ns = _read_stable(path)
    name = os.path.basename(path)
    answer = ask(content_hash_of(data, name))
    prepared = prepare_data(data, name, options) if answer == SEND else None
    # The sidecar starts as a copy of the photo's own metadata: read now, from these bytes, not again later.
    metadata = read_metadata_of(data, name) if options.read_metadata and answer != KEEP else None
    return OneRead(prepared, metadata, (size, mtime_ns))


def read_image(path: str) -> bytes:
    """The bytes of the file at ``path``, read once; read again if it changed meanwhile; PrepareError otherwise."""
    return _read_stable(path)[0]


def _read_stable(path: str) -> tuple[bytes, int, int]:
    for _attempt in range(2):
        data, changed, size, mtime_ns = _read_file(path)
        if not changed:
            return data, size, mtime_ns
    raise PrepareError("file changed while being read")


def prepare_data(data: bytes, name: str, options: PrepareOptions = PrepareOptions()) -> Prepared:
    """Prepare an image already read into memory (``name`` is for messages and the decoder's hint)."""
    from tagger.prepare.decode import DecodeFailure, decode  # Pillow: a run that prepares nothing never loads it

    try:
        decoded = decode(data, name, options.max_edge, options.max_pixels, options.send_location)
    except DecodeFailure as exc:
        raise PrepareError(exc.reason) from exc
    except MemoryError as exc:
        raise PrepareError("not enough memory to decode this image") from exc
    image = decoded.image
    return Prepared(
        data=_encode(image, options.quality),
        width=image.width,
        height=image.height,
        location=decoded.location if options.send_location else None,
        fingerprint=fingerprint(image),
    )


def _read_file(path: str) -> tuple[bytes, bool, int, int]:
    """The file's bytes, whether its size or mtime moved while they were read, and its size and mtime after."""
    try:
        # O_NONBLOCK: opening a FIFO or device must not hang before we can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PrepareError(cannot_read(exc)) from exc
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise PrepareError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = _read_all(handle)
        after = os.fstat(fd)
    except OSError as exc:
        raise PrepareError(cannot_read(exc)) from exc
    finally:
        os.close(fd)
    changed = (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
    return data, changed or len(data) != after.st_size, after.st_size, after.st_mtime_ns


def _read_all(handle: BinaryIO) -> bytes:
    return handle.read()


def _encode(image: object, quality: int) -> bytes:
    from PIL import Image

    assert isinstance(image, Image.Image) and image.mode == "RGB"
    # convert() and transpose() copy info; Pillow re-saves a "comment" from it.
    image.info = {}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=False, progressive=False)
    return out.getvalue()


def _run(
    item: tuple[str, str],
    options: PrepareOptions,
    prepare_task: Callable[..., Prepared],
    read_once_task: Callable[..., OneRead],
    ask: Callable[[str], str],
) -> Prepared | OneRead | str:
    """What a worker process runs: ("prepare", path), ("read_once", path) or ("hash", path)."""
    kind, path = item
    if kind == "read_once":
        return read_once_task(path, options, ask)
    if kind == "hash":
        try:
            return content_hash(path)
        except OSError as exc:
            raise PrepareError(cannot_read(exc)) from None
    return prepare_task(path, options)


#: What a worker process runs, imported once by the process that forks the workers.
_WORKER_MODULES = (__name__, "tagger.prepare.decode")


class Preparer:
    """Prepare images in the calling thread (processes=0) or in a pool of N killable processes.

    Thread-safe. Only the process pool enforces ``options.time_limit``: a worker
    that overruns is killed and replaced, and that file fails. ``cancel()``
    cuts off the preparations in progress (the run is stopping): they raise
    ``Cancelled``, which says nothing about the file.
    """

    _task = staticmethod(prepare)  # what workers run; a test points it at a function that hangs
    _read_once_task = staticmethod(read_once)

    def __init__(self, options: PrepareOptions, *, processes: int = 0) -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        self.options = options
        cls = type(self)
        self._pool = (
            KillablePool(_run, (options, cls._task, cls._read_once_task), processes, asks=True, preload=_WORKER_MODULES)
            if processes
            else None
        )

    def prepare(self, path: str) -> Prepared:
        """Prepare one file; raises PrepareError, or Cancelled when ``cancel()`` cut it off."""
        if self._pool is None:
            return type(self)._task(path, self.options)
        return self._call(("prepare", path), None)

    def read_once(self, path: str, ask: Callable[[str], str]) -> OneRead:
        """Hash, ask, and prepare one new file from one read (see ``read_once``); errors as ``prepare``.

        ``ask`` runs in the calling thread, whichever process hashes; its
        time does not count against the time limit.
        """
        if self._pool is None:
            return type(self)._read_once_task(path, self.options, ask)
        return self._call(("read_once", path), ask)

    def hash(self, path: str) -> str:
        """The content hash of one file, under the same time limit (the dry run's reading); errors as ``prepare``."""
        if self._pool is None:
            try:
                return content_hash(path)
            except OSError as exc:
                raise PrepareError(cannot_read(exc)) from None
        return self._call(("hash", path), None)

    def _call(self, item: tuple[str, str], ask: Callable[[str], str] | None) -> Any:
        assert self._pool is not None
        try:
            return self._pool.call(item, self.options.time_limit, answer=ask)
        except Cancelled:
            raise
        except CallTimeout as exc:
            raise PrepareError(f"took longer than {self.options.time_limit:g} s to prepare") from exc
        except WorkerDied as exc:
            raise PrepareError("the preparing process crashed (out of memory?)") from exc
        except PrepareError:
            raise
        except AskFailed as exc:
            assert exc.__cause__ is not None  # AskFailed is always raised from the caller's error
            raise exc.__cause__ from None  # the caller's own error, raised in its own thread
        except Exception as exc:
            raise PrepareError(f"unexpected error while preparing ({type(exc).__name__}: {exc})") from exc

    def cancel(self) -> None:
        """Cut off the preparations in progress in worker processes, and refuse new ones (threads finish theirs)."""
        if self._pool is not None:
            self._pool.cancel()

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Preparer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
