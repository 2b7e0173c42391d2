"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

The content goes to a temporary file in the same directory (so the rename cannot cross filesystems),
is flushed and fsync'ed, then ``os.replace``-d over the target; the directory is fsync'ed too so the
rename itself survives a power cut. A ``kill -9`` at any moment leaves at most a stray ``.*.tmp`` file.

A failure of the disk itself (full, read-only, no permission: an :class:`OSError` from creating,
writing, flushing, fsync'ing or renaming) removes the temporary file, leaves the previous version of the
target untouched and raises :class:`~cnnzoo.base.errors.FileWriteError`, one line naming the file and the
fix. It is also an ``OSError``, so best-effort writers (caches) that ignore ``OSError`` still do. Writers
such as ``torch.save`` turn a failed ``write`` into a ``RuntimeError`` of their own; the file handed to
them records the ``OSError`` so it is reported as what it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from cnnzoo.base.errors import FileWriteError

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text"]

_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
_NOT_ALLOWED = (errno.EACCES, errno.EPERM, errno.EROFS)


class _RecordingFile:
    """The temporary file as the writer sees it: remembers the first ``OSError`` its writes raised."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:  # tell, seek, fileno, ... of the real file
        return getattr(self._f, name)


def _write_error(path: Path, exc: OSError, existed: bool) -> FileWriteError:
    reason = " ".join(str(exc.strerror or exc).split())  # one line
    kept = f"the previous {path.name} is intact" if existed else f"no {path.name} was written"
    if exc.errno in _NO_SPACE:
        fix = "free some disk space"
    elif exc.errno in _NOT_ALLOWED:
        fix = "make the directory writable or choose another one"
    else:
        fix = "check the disk"
    error = FileWriteError(f"cannot write {path}: {reason}; {kept}: {fix}")
    error.errno = exc.errno  # (not strerror: with both set, OSError.__str__ would replace the message)
    return error


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[tuple[IO[bytes], Path]]:
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc, existed) from None
    tmp_path = Path(tmp)
    f = os.fdopen(fd, "wb")
    out = _RecordingFile(f)
    try:
        try:
            os.chmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; give the file the permissions open() would
        except OSError as exc:
            raise _write_error(path, exc, existed) from None
        try:
            yield out, tmp_path  # type: ignore[misc]
        except BaseException:
            if out.error is not None:  # the disk failed under the writer, whatever the writer made of it
                raise _write_error(path, out.error, existed) from None
            raise
        try:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(tmp_path, path)
        except OSError as exc:
            raise _write_error(path, exc, existed) from None
    except BaseException:
        with contextlib.suppress(OSError):
            f.close()
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    _fsync_dir(path.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows); the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(binary_file)`` on a temporary file, then move it over ``path``.

    Raises :class:`~cnnzoo.base.errors.FileWriteError` when the disk fails (``path`` is then unchanged);
    anything else ``write`` raises propagates unchanged, also leaving ``path`` as it was.
    """
    path = Path(path)
    with _temp_beside(path) as (f, _):
        write(f)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))
