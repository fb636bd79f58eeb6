"""Turn any image a photo archive holds into a small, metadata-free JPEG for upload.

``prepare(path)`` reads the file once into memory (noticing if it changes
meanwhile), decodes it by content with the JPEG decoder shrinking in the DCT
domain, converts colour to sRGB, applies the EXIF orientation and encodes a
baseline JPEG that carries none of the original's metadata. ``Preparer`` runs
it in the calling thread or in a pool of processes that enforces a time limit.
Every failure is a ``PrepareError`` whose ``reason`` a person can read.
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

from tagger.errors import PrepareError
from tagger.prepare.decode import DecodeFailure, decode
from tagger.prepare.fingerprint import Fingerprint, fingerprint
from tagger.prepare.workers import CallTimeout, Cancelled, KillablePool, WorkerDied

__all__ = ["PrepareOptions", "Prepared", "PrepareError", "Cancelled", "prepare", "Preparer"]


@dataclass(frozen=True)
class PrepareOptions:
    """How to prepare images: output size and quality, safety limits, whether to keep GPS."""

    max_edge: int = 1024
    quality: int = 85
    max_pixels: int = 100_000_000
    send_location: bool = False
    time_limit: float = 60.0


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
    name = os.path.basename(path)
    for _attempt in range(2):
        data, changed = _read_file(path)
        if changed:
            continue
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
    raise PrepareError("file changed while being read")


def _read_file(path: str) -> tuple[bytes, bool]:
    """The file's bytes, and whether its size or mtime moved while they were read."""
    try:
        # O_NONBLOCK: opening a FIFO or device must not hang before we can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise PrepareError(_os_reason(exc)) from exc
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise PrepareError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = _read_all(handle)
        after = os.fstat(fd)
    except OSError as exc:
        raise PrepareError(_os_reason(exc)) from exc
    finally:
        os.close(fd)
    changed = (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
    return data, changed or len(data) != after.st_size


def _read_all(handle: BinaryIO) -> bytes:
    return handle.read()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "not a regular file"
    return f"cannot read file ({exc.strerror or exc})"


def _encode(image: object, quality: int) -> bytes:
    from PIL import Image

    assert isinstance(image, Image.Image) and image.mode == "RGB"
    # convert() and transpose() copy info; Pillow re-saves a "comment" from it.
    image.info = {}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=False, progressive=False)
    return out.getvalue()


class Preparer:
    """Prepare images in the calling thread (processes=0) or in a pool of N killable processes.

    Thread-safe. Only the process pool enforces ``options.time_limit``: a worker
    that overruns is killed and replaced, and that file fails. ``cancel()``
    cuts off the preparations in progress (the run is stopping): they raise
    ``Cancelled``, which says nothing about the file.
    """

    _task = staticmethod(prepare)  # what workers run; a test points it at a function that hangs

    def __init__(self, options: PrepareOptions, *, processes: int = 0) -> None:
        if processes < 0:
            raise ValueError("processes must be >= 0")
        self.options = options
        self._pool = KillablePool(type(self)._task, (options,), processes) if processes else None

    def prepare(self, path: str) -> Prepared:
        """Prepare one file; raises PrepareError, or Cancelled when ``cancel()`` cut it off."""
        if self._pool is None:
            return type(self)._task(path, self.options)
        try:
            return self._pool.call(path, self.options.time_limit)
        except Cancelled:
            raise
        except CallTimeout as exc:
            raise PrepareError(f"took longer than {self.options.time_limit:g} s to prepare") from exc
        except WorkerDied as exc:
            raise PrepareError("the preparing process crashed (out of memory?)") from exc
        except PrepareError:
            raise
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
