"""A strict parser (and writer) for the IDX format of MNIST-style files.

IDX layout: two zero bytes, a dtype code, the number of dimensions ``d``, then ``d`` big-endian
uint32 sizes, then the payload in big-endian C order. Anything else — wrong magic, unknown dtype code,
a payload shorter or longer than the sizes say — raises :class:`~cnnzoo.errors.IdxFormatError` with a
one-line message naming the file. Files may be gzip-compressed; that is detected from the content, not
the file name.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from os import PathLike
from pathlib import Path

import numpy as np

from cnnzoo.errors import DataCorruptError, IdxFormatError

__all__ = ["IDX_DTYPES", "parse_idx", "read_idx", "read_maybe_gzip", "write_idx"]

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


def parse_idx(data: bytes | bytearray | memoryview, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a native-endian numpy array.

    ``name`` only appears in error messages.
    """
    buf = memoryview(data)
    if len(buf) < 4:
        raise IdxFormatError(f"{name}: not an IDX file (only {len(buf)} bytes, the header alone needs 4)")
    if buf[0] != 0 or buf[1] != 0:
        raise IdxFormatError(f"{name}: not an IDX file (magic number starts {bytes(buf[:2]).hex()}, expected 0000)")
    code, ndim = buf[2], buf[3]
    if code not in IDX_DTYPES:
        raise IdxFormatError(f"{name}: unknown IDX dtype code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise IdxFormatError(f"{name}: truncated header ({len(buf)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int(s) for s in np.frombuffer(buf[4:header], dtype=">u4"))
    dtype = IDX_DTYPES[code]
    expected = dtype.itemsize * math.prod(shape)
    got = len(buf) - header
    if got < expected:
        raise IdxFormatError(
            f"{name}: truncated payload ({got} of {expected} bytes for shape {shape}); "
            "the file is incomplete, fetch it again"
        )
    if got > expected:
        raise IdxFormatError(f"{name}: {got - expected} bytes of trailing garbage after shape {shape}")
    try:
        arr = np.frombuffer(buf[header:], dtype=dtype).reshape(shape)
    except ValueError:  # the header allows 255 dimensions, numpy 32 (1.x) or 64 (2.x)
        raise IdxFormatError(f"{name}: {ndim} dimensions, more than numpy arrays can have") from None
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


def read_maybe_gzip(path: str | PathLike[str]) -> bytes:
    """The file's content, gunzipped when it is gzip data (whatever its name says)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DataCorruptError(f"{path}: damaged gzip data ({exc}); the file is incomplete, fetch it again") from None


def read_idx(path: str | PathLike[str]) -> tuple[np.ndarray, str]:
    """Read an IDX file (raw or gzip) and return ``(array, md5 of the uncompressed content)``."""
    content = read_maybe_gzip(path)
    return parse_idx(content, name=str(path)), hashlib.md5(content).hexdigest()
