"""The one way cnnzoo reads a file it did not just write: a run's ``config.json``, ``metrics.jsonl``,
``live.json`` and ``per_class.csv``, a leaderboard, an existing output it may replace, a weight's build record.
Such a file may be damaged, or hostile: a FIFO (which would block a reader forever), a device or a link to one
(``/dev/zero`` never ends), a sparse file of gigabytes, JSON nested thousands deep (which makes Python's parser
raise ``RecursionError``), or a link that leads out of the directory a server shows.

* :func:`read_bytes` opens without blocking, refuses anything but a regular file (and a link, where
  ``follow_links`` is False), refuses a file above ``limit`` bytes before reading it and never reads more, and,
  given ``root``, refuses a file whose real path (the one opened, so a swap after the check does not count)
  lies outside it;
* :func:`loads_json` refuses JSON nested deeper than :data:`MAX_DEPTH` before parsing it.

The errors are :class:`UnsafeFileError` (an ``OSError``) and :class:`JsonTooDeepError` (a ``ValueError``), so a
reader that already treats an unreadable or malformed file as absent or damaged treats these the same way, with a
one-line message.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from cnnzoo.base.errors import CnnzooError

__all__ = [
    "LIMIT",
    "MAX_DEPTH",
    "JsonTooDeepError",
    "UnsafeFileError",
    "json_depth",
    "loads_json",
    "read_bytes",
    "read_json",
    "read_text",
]

MAX_DEPTH = 64  # the deepest JSON cnnzoo writes is 5 levels; Python's parser recurses once per level
MB = 1024 * 1024
# The most cnnzoo reads of each kind of file (each far above what it writes: a 1,000-epoch metrics.jsonl is
# about 400 KB, a config.json a few KB).
LIMIT = {
    "config": 4 * MB,  # a run's config.json
    "metrics": 64 * MB,  # metrics.jsonl
    "live": 4 * MB,  # live.json: the epoch in progress
    "table": 4 * MB,  # per_class.csv
    "leaderboard": 64 * MB,  # leaderboard.json
    "record": 1 * MB,  # a weight's build record
}
# A string (its closing quote optional, possessive: an unterminated one is consumed once, never rescanned from
# each quote inside it, so the scan is linear) or a bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*+"?|[\[\]{}]', re.S)


class UnsafeFileError(CnnzooError, OSError):
    """A file refused before it is read: not a regular file, a link where none is allowed, too large, or
    outside the directory it must be in."""


class JsonTooDeepError(CnnzooError, ValueError):
    """JSON nested deeper than :data:`MAX_DEPTH`."""


def read_bytes(
    path: str | os.PathLike[str],
    *,
    limit: int,
    root: str | os.PathLike[str] | None = None,
    follow_links: bool = True,
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (a larger file is refused, not cut).

    Raises :class:`UnsafeFileError` for a FIFO, socket, device or directory, a link when ``follow_links`` is
    False, a file above ``limit`` bytes, or one outside ``root``; ``FileNotFoundError`` and other ``OSError``
    as ``open`` does."""
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_links:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_links and path.is_symlink():
            raise UnsafeFileError(f"{path} is a symbolic link: cnnzoo reads only the file itself here") from None
        raise exc from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFileError(f"{path} is {_kind(info.st_mode)}, not a regular file: cnnzoo does not read it")
        if info.st_size > limit:
            raise UnsafeFileError(f"{path} is {info.st_size:,} bytes, more than the {limit:,} cnnzoo reads here")
        if root is not None:
            _check_inside(fd, path, Path(root))
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while being read
            raise UnsafeFileError(f"{path} grew past {limit:,} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike[str], *, limit: int, **options: Any) -> str:
    """:func:`read_bytes` decoded as UTF-8 (``UnicodeDecodeError``, a ``ValueError``, when it is not)."""
    return read_bytes(path, limit=limit, **options).decode("utf-8")


def read_json(path: str | os.PathLike[str], *, limit: int, max_depth: int = MAX_DEPTH, **options: Any) -> Any:
    """:func:`read_text` parsed by :func:`loads_json`."""
    return loads_json(read_text(path, limit=limit, **options), max_depth=max_depth, where=str(path))


def json_depth(text: str, stop: int | None = None) -> int:
    """How deeply ``text``'s arrays and objects nest (brackets inside strings do not count); the scan ends
    as soon as the depth passes ``stop``."""
    depth = deepest = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop is not None and deepest > stop:
                    break
        elif token in ("]", "}"):
            depth -= 1
    return deepest


def loads_json(text: str | bytes, *, max_depth: int = MAX_DEPTH, where: str = "") -> Any:
    """``json.loads(text)``, after refusing text nested deeper than ``max_depth`` (:class:`JsonTooDeepError`)
    and with any ``RecursionError`` the parser still meets made one too."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8")
    prefix = f"{where}: " if where else ""
    if json_depth(text, stop=max_depth) > max_depth:
        raise JsonTooDeepError(f"{prefix}JSON nested more than {max_depth} levels deep: cnnzoo reads no deeper")
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonTooDeepError(f"{prefix}JSON nested too deeply to parse") from None


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def _check_inside(fd: int, path: Path, root: Path) -> None:
    """Refuse the open file ``fd`` (opened as ``path``) unless its real path lies inside ``root``."""
    try:
        real = Path(os.readlink(f"/proc/self/fd/{fd}"))  # the file actually opened, whatever links led there
    except OSError:
        real = path.resolve()
    top = root.resolve()
    if real != top and top not in real.parents:
        raise UnsafeFileError(f"{path} leads outside {root}: cnnzoo shows only what lies inside it")
