"""Where a named weight's file is, checked before anything reads its tensors.

A shipped weight lies in the package (``cnnzoo/weights/files/``). One that is not shipped (too large for the
package) lies in the user cache, ``~/.cache/cnnzoo/weights/``, once ``cnnzoo weights fetch`` brought the
published file (its SHA-256 is the catalog's) or ``cnnzoo weights build`` trained it here (a file of its own,
recorded in ``NAME.built.json`` beside it with its SHA-256 and the figures this machine measured).

Every read checks the file's size against the catalog's bound and its SHA-256, so a file changed on disk is
refused in one line instead of loaded. :func:`weight_checkpoint` gives the weight as a checkpoint dict of
the one checkpoint format (:mod:`cnnzoo.train.checkpoint`) without its training state, so everything that takes a
run's checkpoint (``eval``, ``predict``, ``explain``, ``export``, the studio) takes a weight the same way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cnnzoo._version import __version__
from cnnzoo.base.errors import CheckpointError
from cnnzoo.base.reading import LIMIT, UnsafeFileError, read_bytes, read_json
from cnnzoo.data.cache import cache_dir
from cnnzoo.train.checkpoint import FORMAT, VERSION
from cnnzoo.weights.catalog import FILES_DIR, Weight, get_weight
from cnnzoo.weights.storage import decode

__all__ = ["built_record", "cached_file", "locate", "read_weight", "weight_checkpoint"]

_BUILT_SUFFIX = ".built.json"
MAX_BUILT_BYTES = 4 << 30  # a locally built file has no published size: no weight here comes near this


def cached_file(weight: Weight) -> Path:
    """Where a weight that is not shipped lives once fetched or built (it may not exist)."""
    return cache_dir("weights") / weight.file


def built_record(weight: Weight) -> Path:
    """The record ``cnnzoo weights build`` writes beside the file it made."""
    return cached_file(weight).with_name(weight.file + _BUILT_SUFFIX)


def _read_built(weight: Weight) -> dict[str, Any] | None:
    path = built_record(weight)
    try:
        record = read_json(path, limit=LIMIT["record"])
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("sha256"), str) else None


def locate(weight: Weight) -> tuple[Path, str]:
    """``(path, sha256 it must have)`` of ``weight``'s file; a one-line error saying how to get it if absent."""
    if weight.shipped:
        path = FILES_DIR / weight.file
        if not path.is_file():
            raise CheckpointError(f"{weight.name}: the shipped file {path} is missing: reinstall cnnzoo")
        return path, weight.sha256
    path = cached_file(weight)
    if path.is_file():
        built = _read_built(weight)
        return path, built["sha256"] if built is not None else weight.sha256
    size = f"{weight.bytes / 1e6:.0f} MB"
    raise CheckpointError(
        f"{weight.name} is not shipped with cnnzoo ({size}): train it here with `cnnzoo weights build "
        f"{weight.name}` or fetch the published file with `cnnzoo weights fetch {weight.name} --mirror URL`"
    )


def read_weight(weight: Weight) -> tuple[dict[str, Any], dict[str, str], Path]:
    """The fp32 ``state_dict``, the file's header and its path, after checking its size and SHA-256."""
    path, sha = locate(weight)
    limit = weight.bytes if sha == weight.sha256 else MAX_BUILT_BYTES
    if not path.is_file():  # a FIFO or a device is never read
        raise CheckpointError(f"{path}: not a regular file: remove it, then fetch or build {weight.name} again")
    size = path.stat().st_size
    if size > limit:
        raise CheckpointError(f"{path}: {size:,} bytes, more than the {limit:,} of {weight.name}: remove it and "
                              "fetch or build it again")  # fmt: skip
    try:
        data = read_bytes(path, limit=limit)  # what was checked is what is read: no swap for a FIFO in between
    except UnsafeFileError as exc:
        raise CheckpointError(f"{exc}: remove it, then fetch or build {weight.name} again") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha:
        fix = "reinstall cnnzoo" if weight.shipped else f"remove it and fetch or build {weight.name} again"
        raise CheckpointError(f"{path}: SHA-256 {digest[:16]}... is not {weight.name}'s {sha[:16]}...: {fix}")
    state, header = decode(data, str(path))
    return state, header, path


def weight_checkpoint(name: str | Weight) -> dict[str, Any]:
    """The weight ``name`` as a checkpoint dict (:mod:`cnnzoo.train.checkpoint`'s format), its training state
    reduced to the epoch and history its card reports; ``path`` is the weight file, ``weight`` its name."""
    weight = name if isinstance(name, Weight) else get_weight(name)
    state, _, path = read_weight(weight)
    history = list(weight.meta.get("history", []))
    epoch = int(weight.meta.get("best_epoch", len(history)))
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_name": weight.model,
        "model_kwargs": dict(weight.model_kwargs),
        "model_state": state,
        "preprocess": {
            "input_size": weight.input_size,
            "in_channels": weight.in_channels,
            "mean": list(weight.mean) if weight.mean is not None else None,
            "std": list(weight.std) if weight.std is not None else None,
            "classes": list(weight.classes),
            "low_confidence": weight.meta.get("low_confidence"),
        },
        "config": dict(weight.config),
        "train": {"epoch": epoch, "history": history[:epoch]},
        "versions": {"cnnzoo": __version__},
        "path": str(path),
        "weight": weight.name,
    }
