"""Where cnnzoo keeps what it downloads and decodes: ``$XDG_CACHE_HOME/cnnzoo/<name>`` (``~/.cache/...``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from cnnzoo.atomic import atomic_write

__all__ = ["cache_dir", "write_decoded"]


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/cnnzoo/<name>``, defaulting to ``~/.cache/cnnzoo/<name>``; nothing is created."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnzoo" / name


def write_decoded(path: Path, payload: dict[str, Any]) -> None:
    """Save decoded tensors to ``path`` (a ``decoded-<key>.pt`` file) and drop the directory's stale ones.

    Best effort: a read-only or full disk only costs the next load a re-decode. ``atomic_write`` reports a
    failed write as ``FileWriteError``, an ``OSError``, even where ``torch.save`` would have raised a
    ``RuntimeError`` of its own.
    """
    try:
        atomic_write(path, lambda fh: torch.save(payload, fh))
        for stale in path.parent.glob("decoded-*.pt"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        pass
