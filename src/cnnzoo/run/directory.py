"""The run directory: what a training run leaves for the user to inspect, resume and reuse.

``runs/<model>-<YYYYmmdd-HHMMSS>/`` (or ``--out DIR``) holds

=================  ===========================================================================
config.json        resolved config, model, data, versions, device, seed, command
metrics.csv/.jsonl one row per completed epoch (rewritten from the checkpoint's history)
curves.png         train loss, train, validation and test accuracy against epoch (redrawn every epoch)
live.json          the epoch in progress: running train loss and accuracy at each log interval (at most
                   twice a second; :mod:`cnnzoo.run.live`), for a viewer such as ``cnnzoo studio``
last.pt            the last completed epoch, or the step Ctrl-C stopped at (resumable)
best.pt            the epoch with the best *validation* accuracy so far (none without a validation split:
                   the test set never chooses a model)
confusion.png      at the end: confusion matrix of the final model on the test set
per_class.csv      at the end: per-class accuracy
top_losses.png     at the end: the test images the final model is most confidently wrong about
explained.png      at the end: the first test image with its Grad-CAM map and top 3 classes
report.md          at the end: the page that ties them together with the model summary
snapshots/         epoch-NNN.safetensors: the weights after each epoch in fp16, as many as ``--snapshots``
                   keeps (:mod:`cnnzoo.run.snapshots`), for the studio's epoch scrubber
=================  ===========================================================================

Per epoch the order is last.pt, best.pt, metrics, curves, snapshot: a metrics row therefore never exists without
its checkpoint, and a crash between two writes loses nothing that ``--resume`` needs. This callback does
all the file I/O of training; give it to rank 0 only.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnzoo.base.atomic import atomic_write, atomic_write_text
from cnnzoo.base.errors import CheckpointError
from cnnzoo.base.plots import confusion_figure, curves_figure, save_figure
from cnnzoo.base.reading import LIMIT, read_json
from cnnzoo.data.batches import ModelView
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.explain.files import explain_run
from cnnzoo.run.report import write_report
from cnnzoo.run.snapshots import repair_snapshots, write_snapshot
from cnnzoo.train.checkpoint import checkpoint_payload, load_checkpoint, save_checkpoint
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.history import HISTORY_KEYS, best_row, time_to_target
from cnnzoo.train.metrics import read_metrics, write_metrics, write_per_class
from cnnzoo.train.state import Callback, EvalResult, TrainState

__all__ = ["RunDirectory"]


class RunDirectory(Callback):
    """Writes a run's files as :func:`cnnzoo.fit` reports progress (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        data: ImageDataset,
        config: TrainConfig,
        environment: Mapping[str, Any],
        command: Sequence[str] | None = None,
        input_size: int,
    ) -> None:
        self.path = Path(path)
        self.data = data
        self.config = config
        self.environment = dict(environment)
        self.command = list(command) if command is not None else None
        self.input_size = int(input_size)
        self.mean, self.std = data.stats if config.normalize else (None, None)
        self.state: TrainState | None = None

    # -- files ------------------------------------------------------------------------------------
    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    def _payload(self, state: TrainState) -> dict[str, Any]:
        return checkpoint_payload(
            state,
            classes=self.data.classes,
            mean=self.mean,
            std=self.std,
            input_size=self.input_size,
            in_channels=self.data.in_channels,
        )

    def write_config(self, state: TrainState) -> None:
        path = self.path / "config.json"
        previous: dict[str, Any] = {}
        if path.is_file():
            try:
                previous = read_json(path, limit=LIMIT["config"])
            except (OSError, ValueError):
                previous = {}
        if not isinstance(previous, dict):  # a hand-damaged file: what it said of earlier sessions is lost, not trusted
            previous = {}
        if not isinstance(previous.get("resumed", []), list) or not isinstance(previous.get("started", ""), str):
            previous = {k: v for k, v in previous.items() if k not in ("resumed", "started")}
        model = state.model
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record = {
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "model": {
                "name": getattr(model, "model_name", self.config.model),
                "kwargs": dict(getattr(model, "model_kwargs", {})),
                "parameters": sum(p.numel() for p in model.parameters()),
                "input_size": self.input_size,
            },
            "data": {
                "name": self.data.name,
                "source": self.data.source,
                "verified": self.data.verified,
                "train_images": int(self.data.train_images.shape[0]),
                "val_images": int(self.data.val_labels.numel()) if self.data.val_labels is not None else 0,
                "validation": self.data.extra.get("validation"),
                "test_images": int(self.data.test_images.shape[0]),
                "classes": list(self.data.classes),
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None,
            },
            "environment": self.environment,
            "command": self.command,
            "started": previous.get("started", now),
            "resumed": [*previous.get("resumed", []), *([now] if previous else [])],
            "throughput_note": "images_per_sec: training images / training wall time of the epoch, "
            "data preparation included, evaluation excluded (eval_seconds)",
        }
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")

    # -- callback hooks ---------------------------------------------------------------------------
    def on_train_start(self, state: TrainState) -> None:
        self.state = state
        for stale in self.path.glob(".*.tmp"):  # left by a process killed mid-write; one writer per run
            stale.unlink(missing_ok=True)
        self.write_config(state)
        self._repair_best(state)
        self._repair_metrics(state)
        repair_snapshots(self.path, state)

    def on_epoch_end(self, state: TrainState) -> None:
        self.state = state
        save_checkpoint(self.last, self._payload(state))
        history = state.history
        if best_row(history) is history[-1]:
            _copy_atomic(self.last, self.best)
        write_metrics(self.path, history, HISTORY_KEYS)
        self.write_curves(history)
        write_snapshot(self.path, state)

    def on_stop(self, state: TrainState) -> None:
        self.state = state
        save_checkpoint(self.last, self._payload(state))

    def write_curves(self, history: Sequence[Mapping[str, Any]]) -> None:
        save_figure(
            curves_figure(history, title=self.config.model, epochs=self.config.epochs), self.path / "curves.png"
        )

    def _repair_metrics(self, state: TrainState) -> None:
        """After a crash between writing last.pt and the metrics, the metrics lack the checkpoint's last
        epoch; rewrite them (and the curves) from its history. Mid-run the next epoch would do it, but not
        when the crash came after the final epoch."""
        if not state.history:
            return
        try:
            rows = read_metrics(self.path)
        except ValueError:  # a damaged metrics.jsonl: the checkpoint's history is the source of truth
            rows = []
        if len(rows) != len(state.history):
            write_metrics(self.path, state.history, HISTORY_KEYS)
            self.write_curves(state.history)

    def _repair_best(self, state: TrainState) -> None:
        """After a crash between writing last.pt and best.pt, best.pt may lag the history: fix it when
        the best epoch is the one last.pt holds (otherwise its weights are gone and best.pt stays)."""
        if not state.history or state.partial is not None or not self.last.exists():
            return
        best = best_row(state.history)
        if best is None or best["epoch"] != state.history[-1]["epoch"]:
            return
        best_epoch = best["epoch"]
        try:
            have = load_checkpoint(self.best)["train"]["epoch"] if self.best.exists() else None
        except CheckpointError:
            have = None
        if have != best_epoch:
            _copy_atomic(self.last, self.best)

    # -- the end of a run -------------------------------------------------------------------------
    def finish(self, state: TrainState, result: EvalResult, model_summary: str) -> dict[str, Path]:
        """Write confusion.png, per_class.csv, top_losses.png, explained.png and report.md for the final model."""
        classes = self.data.classes
        save_figure(
            confusion_figure(
                result.confusion, classes, title=f"{self.config.model}: test accuracy {result.accuracy:.4f}"
            ),
            self.path / "confusion.png",
        )
        rows = write_per_class(self.path / "per_class.csv", result.confusion, classes)
        # report.md is the "finished" mark --resume checks, so everything else is written before it.
        if self.config.target_acc is not None:
            self._record_time_to_target(state)
        explanation = self._explain(state, result)
        write_report(
            self.path / "report.md",
            config=self.config.to_dict(),
            history=state.history,
            per_class=rows,
            final_accuracy=result.accuracy,
            environment=self.environment,
            model_summary=model_summary,
            run_dir=str(self.path),
            command=self.command,
            explanation=explanation,
        )
        names = ["confusion.png", "per_class.csv", "report.md"]
        names += ["top_losses.png", "explained.png"] if not isinstance(explanation, str) else []
        return {name: self.path / name for name in names}

    def _explain(self, state: TrainState, result: EvalResult) -> dict[str, Any] | str:
        """top_losses.png and explained.png (one pass over the test split, one Grad-CAM) for the report, or why
        not: after a long run, a failure here must cost these two figures, not the report."""
        wrong = result.count - int(result.confusion.diagonal().sum())
        try:
            return explain_run(
                state.model,
                self.data,
                self.path,
                ModelView(self.input_size, self.mean, self.std),
                wrong=wrong,
                batch_size=self.config.eval_batch_size,
            ).to_dict()
        except Exception as exc:  # any failure: the report says it instead
            return f"{type(exc).__name__}: {exc}".splitlines()[0]

    def _record_time_to_target(self, state: TrainState) -> None:
        """``--target-acc``: add when the target was reached (or that it was not) to config.json."""
        path = self.path / "config.json"
        try:
            record = read_json(path, limit=LIMIT["config"])
        except (OSError, ValueError):  # written by this run a moment ago: only a hand or a full disk damages it
            record = {}
        record = record if isinstance(record, dict) else {}
        hit = time_to_target(state.history, self.config.target_acc)
        record["time_to_target"] = (
            {**hit, "reached": True, "counts": "training + evaluation wall time; start-up and file writes excluded"}
            if hit is not None
            else {"target": self.config.target_acc, "reached": False, "epochs": len(state.history)}
        )
        atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def _copy_atomic(src: Path, dst: Path) -> None:
    with open(src, "rb") as f:
        atomic_write(dst, lambda out: shutil.copyfileobj(f, out, 1 << 20))
