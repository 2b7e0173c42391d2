"""Epoch snapshots: a light copy of the weights after each epoch, so a viewer can go back to any of them.

``<run>/snapshots/epoch-NNN.safetensors`` holds the network's ``state_dict`` after epoch NNN in half precision
(:mod:`cnnzoo.weights.storage`'s ``fp16``: half the size of the checkpoint's weights, nothing of the optimizer),
and in its header the epoch's test and validation accuracy and the per-class test accuracy, so the studio's
scrubber can show how the network looked, and what it got right, at that epoch.

How many a run keeps (``cnnzoo train --snapshots``):

* ``auto`` (the default): every epoch while they fit in :data:`BUDGET_BYTES` (256 MB) in all; a larger network
  keeps as many as fit, at least two (the first epoch and the newest). LeNet's take 0.1 MB each, ResNet-18's
  at 96x96 22 MB (11 of them fit), AlexNet's 93 MB (2).
* ``all``: every epoch, whatever the size.
* ``N``: at most N (at least 2).
* ``none``: no snapshots.

When a run holds more than it may keep, the snapshot whose neighbours are closest together goes (never the first
or the newest), so those kept stay spread over the whole run. Snapshots are written after the epoch's checkpoint,
metrics and curves, by the process that holds the run's lock; ``--resume`` goes on adding to them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.base.atomic import atomic_write_bytes
from cnnzoo.base.errors import CheckpointError
from cnnzoo.base.reading import read_bytes
from cnnzoo.train.state import TrainState
from cnnzoo.weights.storage import decode, encode, read_header

__all__ = [
    "BUDGET_BYTES",
    "FOLDER",
    "Snapshot",
    "keep_count",
    "list_snapshots",
    "load_snapshot",
    "repair_snapshots",
    "snapshot_bytes",
    "snapshot_path",
    "thin",
    "write_snapshot",
]

FOLDER = "snapshots"
BUDGET_BYTES = 256 * 1024 * 1024  # what "auto" lets one run's snapshots take
FORMAT = "cnnzoo-snapshot/1"
MAX_FILE = 2 << 30  # a snapshot file larger than this is not read
_NAME = re.compile(r"epoch-(\d{3,6})\.safetensors")


def snapshot_bytes(model: nn.Module) -> int:
    """About how large one snapshot of ``model`` is: 2 bytes a floating-point value, 8 an integer buffer."""
    return sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in model.state_dict().values())


def keep_count(setting: str, size: int) -> int | None:
    """How many snapshots of ``size`` bytes a run keeps under ``setting``: None for every one, 0 for none."""
    if setting == "none":
        return 0
    if setting == "all":
        return None
    if setting == "auto":
        return max(2, BUDGET_BYTES // max(1, size))
    return int(setting)


@dataclass(frozen=True)
class Snapshot:
    """One snapshot file: its epoch and what its header says of that epoch."""

    epoch: int
    path: Path
    size: int
    test_accuracy: float | None
    val_accuracy: float | None
    per_class: list[float] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "size": self.size,
            "test_accuracy": self.test_accuracy,
            "val_accuracy": self.val_accuracy,
            "per_class": self.per_class,
        }


def snapshot_path(run_dir: Path, epoch: int) -> Path:
    """Where the run's snapshot after ``epoch`` is (or would be)."""
    return run_dir / FOLDER / f"epoch-{epoch:03d}.safetensors"


def _epochs(run_dir: Path) -> list[int]:
    folder = run_dir / FOLDER
    if not folder.is_dir():
        return []
    inside = folder.resolve()
    found = [(m, p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return sorted(int(m.group(1)) for m, p in found if p.is_file() and p.resolve().parent == inside)


def write_snapshot(run_dir: Path, state: TrainState) -> Path | None:
    """Write the snapshot of ``state``'s epoch (the history's last row), then :func:`thin` the run's snapshots to
    its ``--snapshots`` setting. Returns the file, or None when the setting keeps none."""
    model = state.model
    keep = keep_count(state.config.snapshots, snapshot_bytes(model))
    if keep == 0:
        return None
    row = state.history[-1] if state.history else {}
    result = state.last_eval
    metadata = {
        "cnnzoo.snapshot": FORMAT,
        "epoch": str(state.epoch),
        "model": str(getattr(model, "model_name", state.config.model)),
        "test_accuracy": json.dumps(row.get("test_acc")),
        "val_accuracy": json.dumps(row.get("val_acc")),
        "per_class": json.dumps([round(a, 6) for a in result.per_class_accuracy] if result is not None else None),
    }
    folder = run_dir / FOLDER
    if folder.exists() and not folder.is_dir():  # a file of someone else's by that name: left alone, no snapshots
        return None
    folder.mkdir(exist_ok=True)
    path = atomic_write_bytes(snapshot_path(run_dir, state.epoch), encode(model.state_dict(), "fp16", metadata))
    thin(run_dir, keep)
    return path


def repair_snapshots(run_dir: Path, state: TrainState) -> Path | None:
    """When a run resumes: drop temporary files a killed write left in ``snapshots/``, and write the snapshot of the
    checkpoint's epoch if a kill came between the checkpoint and it (its header then has the epoch's accuracies but
    no per-class figures: the confusion matrix was not kept). Returns the snapshot written, if any."""
    folder = run_dir / FOLDER
    if folder.is_dir():
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    complete = state.partial is None and state.epoch >= 1 and bool(state.history)
    if not complete or snapshot_path(run_dir, state.epoch).exists():
        return None
    return write_snapshot(run_dir, state)


def thin(run_dir: Path, keep: int | None) -> list[int]:
    """Delete snapshots until at most ``keep`` remain (None: keep all): each time the one whose neighbours are
    closest together, never the first or the newest, the earliest on a tie. Returns the epochs deleted."""
    epochs = _epochs(run_dir)
    gone: list[int] = []
    while keep is not None and len(epochs) > max(keep, 2):
        gaps = [(epochs[i + 1] - epochs[i - 1], i) for i in range(1, len(epochs) - 1)]
        _, i = min(gaps)
        snapshot_path(run_dir, epochs[i]).unlink(missing_ok=True)
        gone.append(epochs.pop(i))
    return gone


def _number(meta: Mapping[str, str], key: str) -> Any:
    try:
        return json.loads(meta.get(key, "null"))
    except ValueError:
        return None


def list_snapshots(run_dir: Path) -> list[Snapshot]:
    """The run's snapshots, oldest first, with what their headers say (read without loading the tensors)."""
    out = []
    for epoch in _epochs(run_dir):
        path = snapshot_path(run_dir, epoch)
        try:
            meta = read_header(path)
            size = path.stat().st_size
        except (OSError, CheckpointError):
            continue  # being written, or damaged: not listed
        per_class = _number(meta, "per_class")
        out.append(Snapshot(epoch, path, size, _number(meta, "test_accuracy"), _number(meta, "val_accuracy"),
                            per_class if isinstance(per_class, list) else None))  # fmt: skip
    return out


def load_snapshot(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    """The fp32 ``state_dict`` of the run's snapshot after ``epoch``; :class:`CheckpointError` when there is none."""
    path = snapshot_path(run_dir, epoch)
    if not path.is_file():
        kept = ", ".join(str(e) for e in _epochs(run_dir)) or "none"
        raise CheckpointError(f"{run_dir.name} has no snapshot of epoch {epoch} (it keeps: {kept})")
    state, meta = decode(read_bytes(path, limit=MAX_FILE, root=run_dir), str(path))
    if meta.get("cnnzoo.snapshot") != FORMAT:
        raise CheckpointError(f"{path}: not a cnnzoo epoch snapshot")
    return state
