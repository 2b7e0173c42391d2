"""Where cnnzoo keeps what it downloads and decodes: ``$XDG_CACHE_HOME/cnnzoo/<name>`` (``~/.cache/...``).

A decoded cache file carries a SHA-256 digest of its tensors' content (:func:`tensor_digest`):
:func:`read_decoded` returns it only when the digest still matches, so pixels changed on disk after the
file was written are decoded again from the source instead of being trusted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cnnzoo.base.atomic import atomic_write

__all__ = ["cache_dir", "read_decoded", "tensor_digest", "write_decoded"]


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/cnnzoo/<name>``, defaulting to ``~/.cache/cnnzoo/<name>``; nothing is created."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnzoo" / name


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(torch.uint8).reshape(-1).numpy().data if t.numel() else b"")
    return h.hexdigest()


def write_decoded(path: Path, payload: dict[str, Any], tensors: Mapping[str, torch.Tensor] | None = None) -> None:
    """Save decoded tensors to ``path`` (a ``decoded-<key>.pt`` file) and drop the directory's stale ones.

    ``tensors`` (default: none) are stored under ``"tensors"`` with their :func:`tensor_digest` under
    ``"digest"``. Best effort: a read-only or full disk only costs the next load a re-decode.
    ``atomic_write`` reports a failed write as ``FileWriteError``, an ``OSError``, even where
    ``torch.save`` would have raised a ``RuntimeError`` of its own.
    """
    if tensors is not None:
        payload = {**payload, "tensors": dict(tensors), "digest": tensor_digest(tensors)}
    try:
        atomic_write(path, lambda fh: torch.save(payload, fh))
        for stale in path.parent.glob("decoded-*.pt"):
            if stale != path:
                stale.unlink(missing_ok=True)
    except OSError:
        pass


def read_decoded(path: Path) -> dict[str, Any] | None:
    """The payload :func:`write_decoded` wrote to ``path``, or None: missing, damaged, or its digest differs."""
    try:
        blob = torch.load(path, weights_only=True)
    except Exception:  # missing, or a damaged cache file of ours: decode again and replace it
        return None
    if not isinstance(blob, dict):
        return None
    tensors = blob.get("tensors")
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        return None
    if blob.get("digest") != tensor_digest(tensors):
        return None
    return blob
