"""A strict parser (and writer) for the IDX format of MNIST-style files.

IDX layout: two zero bytes, a dtype code, the number of dimensions ``d``, then ``d`` big-endian
uint32 sizes, then the payload in big-endian C order. Anything else — wrong magic, unknown dtype code,
a payload shorter or longer than the sizes say — raises :class:`~cnnzoo.base.errors.IdxFormatError` with a
one-line message naming the file. Files may be gzip-compressed; that is detected from the content, not
the file name.

Reading is bounded: the header is read first and the size it implies is checked — against
:data:`MAX_IDX_BYTES` and, for a raw file, against the file's size on disk — before the payload is read or
allocated. A gzip file is decompressed as a stream and never beyond the size its header implies, so a gzip
bomb or a header claiming 10^12 items fails at once, in bounded memory.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from os import PathLike
from pathlib import Path
from typing import BinaryIO

import numpy as np

from cnnzoo.base.errors import DataCorruptError, IdxFormatError

__all__ = ["IDX_DTYPES", "MAX_IDX_BYTES", "check_idx_file", "parse_idx", "read_idx", "read_maybe_gzip", "write_idx"]

# dtype code -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
#: The largest IDX content (header + payload, uncompressed) cnnzoo reads: twice the largest known file
#: (Fashion-MNIST's, MNIST's and KMNIST's 60000x28x28 training images, 47,040,016 bytes).
MAX_IDX_BYTES = 2 * 47_040_016
_CHUNK = 1 << 20


def _header(head: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, header length)`` of the first bytes of an IDX file (at least 4 of them)."""
    if len(head) < 4:
        raise IdxFormatError(f"{name}: not an IDX file (only {len(head)} bytes, the header alone needs 4)")
    if head[0] != 0 or head[1] != 0:
        raise IdxFormatError(f"{name}: not an IDX file (magic number starts {bytes(head[:2]).hex()}, expected 0000)")
    code, ndim = head[2], head[3]
    if code not in IDX_DTYPES:
        raise IdxFormatError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    length = 4 + 4 * ndim
    if len(head) < length:
        raise IdxFormatError(f"{name}: truncated header ({len(head)} bytes, {ndim} dimensions need {length})")
    shape = tuple(int(s) for s in np.frombuffer(head[4:length], dtype=">u4"))
    return IDX_DTYPES[code], shape, length


def _check_payload(name: str, shape: tuple[int, ...], expected: int, got: int) -> None:
    if got < expected:
        raise IdxFormatError(
            f"{name}: truncated payload ({got} of {expected} bytes for shape {shape}); "
            "the file is incomplete, fetch it again"
        )
    if got > expected:
        raise IdxFormatError(f"{name}: {got - expected} bytes of trailing garbage after shape {shape}")


def _check_limit(name: str, shape: tuple[int, ...], total: int, limit: int) -> None:
    if total > limit:
        raise IdxFormatError(
            f"{name}: its header claims shape {shape}, {total} bytes, over the {limit}-byte limit for an IDX file; "
            "the file is damaged or not an MNIST-style dataset, replace it"
        )


def parse_idx(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a native-endian numpy array.

    ``name`` only appears in error messages.
    """
    buf = memoryview(data)
    dtype, shape, header = _header(bytes(buf[: 4 + 4 * 255]), name)
    _check_payload(name, shape, dtype.itemsize * math.prod(shape), len(buf) - header)
    try:
        arr = np.frombuffer(buf[header:], dtype=dtype).reshape(shape)
    except ValueError:  # the header allows 255 dimensions, numpy 32 (1.x) or 64 (2.x)
        raise IdxFormatError(f"{name}: {len(shape)} dimensions, more than numpy arrays can have") from None
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX bytes (the inverse of :func:`parse_idx`)."""
    native = np.asarray(array).dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim > 255:
        raise ValueError("IDX stores at most 255 dimensions")
    code = _CODES[native]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def _read_upto(stream: BinaryIO, n: int) -> bytearray:
    """At most ``n`` bytes of ``stream``, read in chunks: memory grows with what arrives, not with ``n``."""
    out = bytearray()
    while len(out) < n:
        chunk = stream.read(min(n - len(out), _CHUNK))
        if not chunk:
            break
        out += chunk
    return out


def _damaged(path: Path, exc: BaseException) -> DataCorruptError:
    return DataCorruptError(f"{path}: damaged gzip data ({exc}); the file is incomplete, fetch it again")


def read_maybe_gzip(path: str | PathLike[str], limit: int = MAX_IDX_BYTES) -> bytes | bytearray:
    """The file's content, gunzipped when it is gzip data (whatever its name says); at most ``limit`` bytes.

    Content larger than ``limit`` (a huge file, a gzip bomb) is a :class:`DataCorruptError`, raised after
    reading at most ``limit + 1`` bytes of it.
    """
    path = Path(path)
    with path.open("rb") as raw:
        if raw.read(2) != _GZIP_MAGIC:
            if path.stat().st_size > limit:
                raise DataCorruptError(f"{path}: {path.stat().st_size} bytes, over the {limit}-byte limit: replace it")
            raw.seek(0)
            return raw.read()
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw) as stream:
                content = _read_upto(stream, limit + 1)
        except (EOFError, OSError, zlib.error) as exc:
            raise _damaged(path, exc) from None
    if len(content) > limit:
        raise DataCorruptError(
            f"{path}: decompresses to more than {limit} bytes (a gzip bomb, or not a dataset file): replace it"
        )
    return content


def read_idx(path: str | PathLike[str], limit: int = MAX_IDX_BYTES) -> tuple[np.ndarray, str]:
    """Read an IDX file (raw or gzip) and return ``(array, md5 of the uncompressed content)``.

    The header is read and checked first: the size it implies must be at most ``limit`` bytes and, for a
    raw file, equal the file's size, before any payload is read.
    """
    path = Path(path)
    name = str(path)
    with path.open("rb") as raw:
        gz = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        try:
            if gz:
                with gzip.GzipFile(fileobj=raw) as stream:
                    content = _read_bounded(stream, name, limit, None)
            else:
                content = _read_bounded(raw, name, limit, path.stat().st_size)
        except (EOFError, zlib.error) as exc:
            raise _damaged(path, exc) from None
        except OSError as exc:
            if not gz or isinstance(exc, (FileNotFoundError, PermissionError)):
                raise
            raise _damaged(path, exc) from None
    return parse_idx(content, name=name), hashlib.md5(content).hexdigest()


def _read_bounded(stream: BinaryIO, name: str, limit: int, size_on_disk: int | None) -> bytearray:
    """The whole IDX content of ``stream``, its size checked from the header before the payload is read."""
    head = _read_upto(stream, 4)
    if len(head) == 4 and head[:2] == b"\0\0":
        head += _read_upto(stream, 4 * head[3])
    dtype, shape, header = _header(head, name)
    total = header + dtype.itemsize * math.prod(shape)
    _check_limit(name, shape, total, limit)
    if size_on_disk is not None:
        _check_payload(name, shape, total - header, size_on_disk - header)
    content = head
    content += _read_upto(stream, total - header)
    extra = len(stream.read(1))  # one byte more tells trailing garbage apart, whatever its length
    if extra and size_on_disk is None:  # compressed: the rest is not decompressed (it may be a gzip bomb)
        raise IdxFormatError(
            f"{name}: trailing garbage after shape {shape} (the content is longer than its header says: "
            "a damaged file or a gzip bomb); replace it"
        )
    _check_payload(name, shape, total - header, len(content) - header + extra)
    return content


def check_idx_file(path: str | PathLike[str], limit: int = MAX_IDX_BYTES) -> None:
    """Check a raw IDX file's header against ``limit`` and its size on disk, reading the header only.

    For files another reader (torchvision) then reads whole: a huge or sparse file fails here first.
    """
    path = Path(path)
    with path.open("rb") as raw:
        head = raw.read(4)
        if len(head) == 4 and head[:2] == b"\0\0":
            head += raw.read(4 * head[3])
    dtype, shape, header = _header(head, str(path))
    total = header + dtype.itemsize * math.prod(shape)
    _check_limit(str(path), shape, total, limit)
    _check_payload(str(path), shape, total - header, path.stat().st_size - header)
