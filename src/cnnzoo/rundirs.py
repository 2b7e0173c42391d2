"""What makes a directory a cnnzoo run, decided in one place and without torch: the data layer (a folder of runs
is never a class of pictures), the studio (which directories it lists) and the run layer (whether ``--out`` may
take a new run) all ask :func:`is_run_dir`.

A run directory holds ``last.pt`` (a checkpoint) or ``metrics.jsonl`` (an epoch's metrics), even damaged: at least
one epoch was done there; or a ``config.json`` that is a cnnzoo run record (a JSON object with ``config``,
``model`` and ``environment``: a run stopped before its first epoch ended). The record is read the safe way
(:mod:`cnnzoo.reading`): a FIFO, a link to a device or a nesting bomb named ``config.json`` is no record.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnzoo.reading import LIMIT, read_json

__all__ = ["CHECKPOINT_NAME", "CONFIG_NAME", "METRICS_NAME", "is_run_dir", "is_run_record"]

CONFIG_NAME = "config.json"
CHECKPOINT_NAME = "last.pt"
METRICS_NAME = "metrics.jsonl"
_RECORD_KEYS = {"config", "model", "environment"}


def is_run_record(path: str | os.PathLike[str]) -> bool:
    """Whether the file ``path`` is a run's ``config.json`` as cnnzoo writes it."""
    try:
        record = read_json(path, limit=LIMIT["config"])
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and set(record) >= _RECORD_KEYS


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether the directory ``path`` holds a cnnzoo run (module docstring)."""
    path = Path(path)
    try:
        done = (path / CHECKPOINT_NAME).is_file() or (path / METRICS_NAME).is_file()
        return done or is_run_record(path / CONFIG_NAME)
    except OSError:
        return False
