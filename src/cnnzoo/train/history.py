"""Questions asked of a run's history (its list of per-epoch rows), without torch: the best row (by validation
accuracy), the time to a target accuracy, whether patience ran out, the run's images per second. The loop, the
report, the progress lines, the studio and the leaderboard read a history through these, as torchvision's
references keep their metric logger apart from the training script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["HISTORY_KEYS", "TIMING_KEYS", "best_row", "patience_reached", "run_images_per_sec", "time_to_target"]
HISTORY_KEYS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",  # None without a validation split (the d2l recipe, --val-size 0)
    "val_acc",
    "test_loss",
    "test_acc",
    "lr",
    "images_per_sec",
    "train_seconds",
    "eval_seconds",  # validation and test evaluation together
)
TIMING_KEYS = ("images_per_sec", "train_seconds", "eval_seconds")  # wall-clock: differ run to run


def time_to_target(history: Sequence[Mapping[str, Any]], target: float) -> dict[str, Any] | None:
    """When a run first reached test accuracy ``target``: ``epoch``, ``test_acc`` and ``seconds``, the
    training *and evaluation* wall time of the epochs up to it (start-up and run-directory writes are
    not counted); ``None`` if it never did.

    This is a time-to-accuracy measurement on the test set, as DAWNBench and airbench define it: it ends
    the run and reports when, it never chooses a model (``best.pt`` and ``--patience`` use validation)."""
    seconds = 0.0
    for row in history:
        seconds += row["train_seconds"] + row["eval_seconds"]
        if row["test_acc"] >= target:
            return {"target": target, "epoch": int(row["epoch"]), "test_acc": row["test_acc"], "seconds": seconds}
    return None


def best_row(history: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The epoch ``best.pt`` holds: the first with the highest *validation* accuracy. None without a
    validation split: the test set never chooses a model."""
    rows = [r for r in history if r.get("val_acc") is not None]
    return max(rows, key=lambda r: r["val_acc"]) if rows else None


def patience_reached(history: Sequence[Mapping[str, Any]], patience: int | None) -> bool:
    """Early stopping: ``patience`` epochs have passed since the best validation accuracy (:func:`best_row`)."""
    best = best_row(history) if patience is not None else None
    return best is not None and int(history[-1]["epoch"]) - int(best["epoch"]) >= patience


def run_images_per_sec(history: Sequence[Mapping[str, Any]]) -> float:
    """A run's throughput: every training image of its epochs over their summed training wall time (data
    included, evaluation excluded), not the mean of the epochs' rates."""
    images = sum(r["images_per_sec"] * r["train_seconds"] for r in history)
    seconds = sum(r["train_seconds"] for r in history)
    return images / seconds if seconds > 0 else float("nan")
