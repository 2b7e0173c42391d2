"""Metric files and per-class numbers: ``metrics.csv``, ``metrics.jsonl``, ``per_class.csv``.

The history in the checkpoint is the source of truth; both metric files are rewritten from it (atomically)
after every epoch, so after a crash and ``--resume`` they never hold a row the checkpoint does not.
Floats are written with ``repr``, so a value read back is bit-for-bit the value trained.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from cnnzoo.base.atomic import atomic_write_text
from cnnzoo.base.errors import MetricsFileError
from cnnzoo.base.reading import LIMIT, loads_json, read_text

__all__ = [
    "confusion_matrix",
    "per_class_rows",
    "read_metrics",
    "write_metrics",
    "write_per_class",
]


def _cell(value: Any) -> str:
    if value is None:  # e.g. val_acc of a run without a validation split
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def write_metrics(run_dir: str | os.PathLike[str], history: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> None:
    """Rewrite ``metrics.csv`` and ``metrics.jsonl`` with one row per epoch of ``history``."""
    run_dir = Path(run_dir)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(keys)
    for row in history:
        writer.writerow([_cell(row.get(k, "")) for k in keys])
    atomic_write_text(run_dir / "metrics.csv", buf.getvalue())
    lines = [json.dumps({k: row.get(k) for k in keys}, allow_nan=True) for row in history]
    atomic_write_text(run_dir / "metrics.jsonl", "".join(line + "\n" for line in lines))


_METRIC_KEYS = ("epoch", "test_acc")  # what every row needs (plots and the best-accuracy line read them)


def read_metrics(
    run_dir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (``[]`` when it has none yet).

    A damaged file (a line that is not JSON, a row that is not an object, lacks ``epoch`` or ``test_acc``, or
    holds a value that is not a number), or one :mod:`cnnzoo.base.reading` refuses (not a regular file, too large,
    nested too deep, outside ``root``), raises :class:`~cnnzoo.base.errors.MetricsFileError` naming the file and
    the line."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    try:
        text = read_text(path, limit=LIMIT["metrics"], root=root)
    except (OSError, UnicodeDecodeError) as exc:
        raise MetricsFileError(f"{path}: cannot read it ({exc}): restore it, or rewrite it with "
                               f"cnnzoo train --resume {run_dir}") from None  # fmt: skip
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            rows.append(_metrics_row(path, number, line))
    return rows


def _metrics_row(path: Path, number: int, line: str) -> dict[str, Any]:
    fix = "restore the file, or delete the damaged line"
    try:
        row = loads_json(line)
    except ValueError as exc:
        raise MetricsFileError(f"{path}: line {number} is not valid JSON ({exc.args[0][:60]}): {fix}") from None
    if not isinstance(row, dict):
        raise MetricsFileError(f"{path}: line {number} is a {type(row).__name__}, not an object of metrics: {fix}")
    missing = [k for k in _METRIC_KEYS if k not in row]
    if missing:
        raise MetricsFileError(f"{path}: line {number} lacks {', '.join(missing)}: {fix}")
    for key, value in row.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise MetricsFileError(f"{path}: line {number}: {key} is {value!r}, not a number: {fix}")
    return row


def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """``[K, K]`` int64 counts: row = true class, column = predicted class (computed on their device)."""
    pairs = targets.long() * num_classes + predictions.long()
    return torch.bincount(pairs, minlength=num_classes * num_classes).view(num_classes, num_classes)


CONFIDENCE_BINS = 100  # top-probability histogram of an evaluation: bins 0.01 wide
COIN_FLIP = 0.5  # below the low-confidence bound, the model's own validation predictions were right this often at most
MIN_UNSURE = 30  # predictions below the bound it takes to set one


def confidence_histogram(logits: Tensor, targets: Tensor) -> Tensor:
    """``[2, CONFIDENCE_BINS]`` int64 counts by top probability: all predictions, then the correct ones."""
    top, picked = logits.float().softmax(dim=1).max(dim=1)
    bins = (top * CONFIDENCE_BINS).long().clamp_(0, CONFIDENCE_BINS - 1)
    correct = bins[picked == targets]
    return torch.stack(
        [torch.bincount(bins, minlength=CONFIDENCE_BINS), torch.bincount(correct, minlength=CONFIDENCE_BINS)]
    )


def low_confidence_bound(histogram: Tensor | None) -> float | None:
    """The top probability below which the predictions of ``histogram`` (:func:`confidence_histogram` of a
    validation split) were, all together, right at most :data:`COIN_FLIP` of the time: the upper edge of the
    highest such bin that holds predictions, with at least :data:`MIN_UNSURE` below it, or None (too few unsure
    predictions to say).

    Label smoothing squeezes a model's probabilities (its best is about 0.9, and it is right 64 % of the time at
    0.55), so a fixed bound says little across recipes; this one is each model's own record."""
    if histogram is None:
        return None
    histogram = histogram.cpu()
    counts, correct = (row.double().cumsum(0) for row in histogram)
    # the edge of a bin that holds predictions: past the last one, nothing more is known
    good = (histogram[0] > 0) & (counts >= MIN_UNSURE) & (correct <= COIN_FLIP * counts)
    edges = torch.nonzero(good).flatten()
    return round((int(edges.max()) + 1) / CONFIDENCE_BINS, 2) if edges.numel() else None


def per_class_rows(confusion: Tensor, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Per class: label, name, test images, correct, accuracy, and the class most often predicted instead."""
    confusion = confusion.cpu()
    rows = []
    for i, name in enumerate(classes):
        total = int(confusion[i].sum())
        correct = int(confusion[i, i])
        wrong = confusion[i].clone()
        wrong[i] = -1
        j = int(wrong.argmax())
        rows.append(
            {
                "label": i,
                "class": name,
                "images": total,
                "correct": correct,
                "accuracy": correct / total if total else float("nan"),
                "most_confused_with": classes[j] if total and int(confusion[i, j]) > 0 else "",
                "confused_count": int(confusion[i, j]) if total else 0,
            }
        )
    return rows


def write_per_class(path: str | os.PathLike[str], confusion: Tensor, classes: Sequence[str]) -> list[dict[str, Any]]:
    """Write ``per_class.csv``; return its rows."""
    rows = per_class_rows(confusion, classes)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())
    return rows
