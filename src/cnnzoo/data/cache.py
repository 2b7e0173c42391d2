"""Where cnnzoo keeps what it downloads and decodes: ``$XDG_CACHE_HOME/cnnzoo/<name>`` (``~/.cache/...``)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME/cnnzoo/<name>``, defaulting to ``~/.cache/cnnzoo/<name>``; nothing is created."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnnzoo" / name
