"""The one place that decides whether cnnzoo may write a file a user named (``--png``, ``--out``, ``--output``,
``--csv``, ``--json``, ``--markdown``).

Nothing of the user's is overwritten: :func:`claim_output` allows a path that does not exist, or a file
cnnzoo itself wrote for the same purpose, recognised by its content:

==============  ==============================================================================================
kind            recognised by
==============  ==============================================================================================
``png``         a PNG text chunk ``Software: cnnzoo ...`` (:func:`cnnzoo.base.plots.figure_png` adds it)
``markdown``    a ``<!-- written by cnnzoo ... -->`` comment near the top or the end (:func:`marker_comment`)
``json``        a top-level object with ``"written_by": "cnnzoo ..."`` or a ``"format": "cnnzoo-..."``
``csv``         its first line is the header the caller names (the header cnnzoo's writer puts there)
``onnx``        the model's ``cnnzoo.model_name`` metadata (:mod:`cnnzoo.serve.export`)
``safetensors`` ``cnnzoo.model_name`` in the header's ``__metadata__``
==============  ==============================================================================================

Anything else that exists is refused with one line naming it; ``force=True`` (the commands' ``--force``)
replaces a foreign file, but never a directory, a checkpoint (``.pt``, or a file in torch's format) or an
input of the same command. Writing stays atomic (:mod:`cnnzoo.base.atomic`); this module only decides.
"""

from __future__ import annotations

import mmap
import os
import struct
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from cnnzoo.base.errors import OutputError
from cnnzoo.base.reading import loads_json, read_json

__all__ = ["KINDS", "MARKER", "PNG_SOFTWARE", "claim_output", "is_cnnzoo_output", "marker_comment"]

MARKER = "written by cnnzoo"
PNG_SOFTWARE = "cnnzoo"  # the value (prefix) of the PNG text chunk "Software" on every figure cnnzoo writes
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEAD = 4096  # how much of a text file is searched for its marker
_JSON_LIMIT = 64 << 20  # a JSON file larger than this is not one cnnzoo wrote
_WHAT = {
    "png": "a PNG figure",
    "markdown": "a Markdown page",
    "json": "a JSON file",
    "csv": "a CSV table",
    "onnx": "an ONNX export",
    "safetensors": "a safetensors export",
}


def marker_comment(what: str) -> str:
    """The first line of every Markdown file cnnzoo writes: how :func:`claim_output` knows it may rewrite it."""
    return f"<!-- {MARKER} {what}: cnnzoo may rewrite this file -->\n"


def _png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG (up to its first image data); ``{}`` for anything that is not a PNG."""
    texts: dict[str, str] = {}
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return {}
        while True:
            head = f.read(8)
            if len(head) < 8:
                return texts
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND") or length > 1 << 20:
                return texts
            body = f.read(length)
            f.seek(4, os.SEEK_CUR)  # the CRC
            if kind == b"tEXt" and b"\0" in body:
                key, value = body.split(b"\0", 1)
                texts[key.decode("latin-1")] = value.decode("latin-1")


def _is_png(path: Path, header: str | None) -> bool:
    return _png_text(path).get("Software", "").startswith(PNG_SOFTWARE)


def _is_markdown(path: Path, header: str | None) -> bool:
    """The marker in the first or the last few kilobytes (a table meant for pasting carries it at its end)."""
    mark = f"<!-- {MARKER}".encode()
    with open(path, "rb") as f:
        if mark in f.read(_HEAD):
            return True
        f.seek(max(0, path.stat().st_size - _HEAD))
        return mark in f.read(_HEAD)


def _is_json(path: Path, header: str | None) -> bool:
    try:
        doc = read_json(path, limit=_JSON_LIMIT)
    except (UnicodeDecodeError, ValueError):  # an OSError (too large, not a regular file): is_cnnzoo_output
        return False
    if not isinstance(doc, dict):
        return False
    return str(doc.get("written_by", "")).startswith("cnnzoo") or str(doc.get("format", "")).startswith("cnnzoo-")


def _is_csv(path: Path, header: str | None) -> bool:
    if not header:
        return False
    with open(path, "rb") as f:
        first = f.read(len(header.encode()) + 2).decode("utf-8", "replace").splitlines()
    return bool(first) and first[0] == header.rstrip("\n")


def _is_onnx(path: Path, header: str | None) -> bool:
    if path.stat().st_size == 0:
        return False
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(b"cnnzoo.model_name") >= 0


def _is_safetensors(path: Path, header: str | None) -> bool:
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            return False
        (n,) = struct.unpack("<Q", raw)
        if n > 100 << 20:
            return False
        try:
            head = loads_json(f.read(n))
        except (UnicodeDecodeError, ValueError):
            return False
    meta = head.get("__metadata__") if isinstance(head, dict) else None
    return isinstance(meta, dict) and "cnnzoo.model_name" in meta


KINDS: dict[str, Callable[[Path, str | None], bool]] = {
    "png": _is_png,
    "markdown": _is_markdown,
    "json": _is_json,
    "csv": _is_csv,
    "onnx": _is_onnx,
    "safetensors": _is_safetensors,
}


def is_cnnzoo_output(path: str | os.PathLike[str], kind: str, *, header: str | None = None) -> bool:
    """Whether the existing file ``path`` is one cnnzoo wrote as ``kind`` (see the module docstring)."""
    try:
        return KINDS[kind](Path(path), header)
    except OSError:
        return False


def _is_checkpoint(path: Path) -> bool:
    """A ``.pt`` file, or any file in torch's zip format (``torch.save``): never an output's place."""
    if path.suffix == ".pt":
        return True
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as z:
            return any(name.endswith("/data.pkl") or name == "data.pkl" for name in z.namelist()[:8])
    except (OSError, zipfile.BadZipFile):
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def claim_output(
    path: str | os.PathLike[str],
    kind: str,
    *,
    flag: str = "the output",
    force: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    header: str | None = None,
) -> Path:
    """``path`` as a :class:`~pathlib.Path` when cnnzoo may write ``kind`` there, else :class:`OutputError`.

    Allowed: a path that does not exist; an existing file cnnzoo wrote as ``kind`` (recognised by content);
    with ``force``, any other existing regular file. Never: an empty path, a directory, a checkpoint, or
    one of ``inputs`` (the files the same command reads). ``flag`` names the option in the message;
    ``header`` is the first line of the CSV cnnzoo writes (``kind="csv"``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")  # a bug, not a user error
    if not str(path).strip():
        raise OutputError(f"{flag} is empty (an unset variable?): give a file name")
    p = Path(path)
    for source in inputs:
        if _same(p, Path(source)):
            raise OutputError(f"{flag} {p} is an input of this command: choose another path for {_WHAT[kind]}")
    if not p.exists() and not p.is_symlink():
        return p
    if p.is_dir():
        raise OutputError(f"{flag} {p} is a directory: give a file name for {_WHAT[kind]}")
    if not p.is_file():
        raise OutputError(f"{flag} {p} is not a regular file: choose another path")
    if _is_checkpoint(p):
        raise OutputError(f"{flag} {p} is a checkpoint: choose another path (cnnzoo never writes over a checkpoint)")
    if is_cnnzoo_output(p, kind, header=header) or force:
        return p
    raise OutputError(
        f"{flag} {p} exists and is not {_WHAT[kind]} cnnzoo wrote: choose another path, or pass --force to replace it"
    )
