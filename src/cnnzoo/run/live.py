"""``RUN/live.json``: the epoch in progress, for whoever watches a run from outside the process (the studio).

``metrics.csv`` gains a row only when an epoch ends; on a slow model an epoch is many minutes of nothing to
look at. :class:`LiveCurves` is a callback that keeps the running train loss and accuracy of the current epoch
at every log interval (the engine reads its device accumulators then anyway: no extra host sync) and writes
them, atomically and at most every :data:`WRITE_SECONDS`, as::

    {"model": "lenet_bn", "epochs": 10, "epoch": 3, "steps": 469, "updated": 1733000000.0,
     "state": "training", "rows": [{"epoch": 3, "fraction": 0.25, "step": 117,
                                     "train_loss": 0.61, "train_acc": 0.78}, ...]}

``rows`` hold the partial epoch only: completed epochs are in ``metrics.csv``/``.jsonl``, written from the
checkpoint's history, which stays the source of truth. ``state`` is ``training`` or ``stopped`` (Ctrl-C: the
half epoch ``--resume`` continues). When training ends any other way (finished, diverged, a full disk) the file
is removed: a finished run's directory holds what it held before live curves existed. Whether a process still
trains in the directory is its lock's business (:func:`cnnzoo.base.rundirs.lock_holder`), not this file's: a
killed run leaves ``training`` behind.

The file is progress, not a result: a failure to write it (a full disk) is ignored, never a reason to stop
training, and it is read with :func:`read_live`, which takes a damaged or missing file as "no live rows".
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnzoo.base.atomic import atomic_write_text
from cnnzoo.base.reading import LIMIT, read_json
from cnnzoo.train.state import Callback, EpochTotals, TrainState

__all__ = ["LIVE_NAME", "MAX_ROWS", "WRITE_SECONDS", "LiveCurves", "live_row", "read_live"]

LIVE_NAME = "live.json"
WRITE_SECONDS = 0.5  # at most two rewrites a second, however short the log interval
MAX_ROWS = 500  # rows kept per epoch: past it every other row is dropped (the curve keeps its shape)


def live_row(state: TrainState, totals: EpochTotals, steps: int) -> dict[str, Any]:
    """One point of the epoch in progress: epoch (1-based), fraction of its steps done, running loss and
    accuracy over the images seen so far in the epoch (one host read of the device sums, at a log interval)."""
    count = max(1, totals.count)
    return {
        "epoch": state.epoch + 1,
        "fraction": min(1.0, totals.step / steps) if steps else 1.0,
        "step": totals.step,
        "train_loss": float(totals.loss_sum) / count,
        "train_acc": int(totals.correct) / count,
    }


class LiveCurves(Callback):
    """Writes ``directory/live.json`` (see the module docstring); give it to rank 0 only, as the run directory.

    ``clock`` is ``time.monotonic`` (tests pass their own).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        interval: float = WRITE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(directory) / LIVE_NAME
        self.interval = interval
        self.clock = clock
        self.rows: list[dict[str, Any]] = []
        self.steps = 0
        self.writes = 0
        self._last_write: float | None = None
        self._meta: dict[str, Any] = {}
        self._stopped = False

    def on_train_start(self, state: TrainState) -> None:
        self._meta = {"model": state.config.model, "epochs": state.config.epochs}
        self.rows = []
        self._stopped = False
        self._write(state, "training")

    def on_epoch_start(self, state: TrainState, steps: int) -> None:
        self.steps = steps
        self.rows = []

    def on_log(self, state: TrainState, totals: EpochTotals) -> None:
        self.rows.append(live_row(state, totals, self.steps))
        if len(self.rows) > MAX_ROWS:
            self.rows = self.rows[::2]
        now = self.clock()
        if self._last_write is None or now - self._last_write >= self.interval:
            self._write(state, "training", now)

    def on_epoch_end(self, state: TrainState) -> None:
        self.rows = []  # the epoch is a metrics row now
        if state.epoch < state.config.epochs:
            self._write(state, "training")

    def on_stop(self, state: TrainState) -> None:
        self._stopped = True
        self._write(state, "stopped")

    def close(self) -> None:
        """The training is over: keep a stopped run's half epoch, remove the file otherwise."""
        if not self._stopped:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)

    def _write(self, state: TrainState, status: str, now: float | None = None) -> None:
        record = {
            **self._meta,
            "epoch": state.epoch + (1 if self.rows else 0),
            "steps": self.steps,
            "updated": time.time(),
            "state": status,
            "rows": self.rows,
        }
        try:
            atomic_write_text(self.path, json.dumps(record) + "\n")
        except OSError:  # FileWriteError included: progress for a viewer is never worth stopping a run for
            return
        self._last_write = self.clock() if now is None else now
        self.writes += 1


def read_live(run_dir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The record in ``run_dir/live.json``, or None when there is none or it is not one (a viewer shows no
    live rows rather than an error: the file is progress, written best-effort). Read safely
    (:mod:`cnnzoo.base.reading`), and only inside ``root`` when given."""
    path = Path(run_dir) / LIVE_NAME
    try:
        record = read_json(path, limit=LIMIT["live"], root=root)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("rows"), list):
        return None
    rows = [r for r in record["rows"] if _is_row(r)]
    return {**record, "rows": rows}


def _is_row(row: Any) -> bool:
    keys = ("epoch", "fraction", "train_loss", "train_acc")
    return isinstance(row, dict) and all(
        isinstance(row.get(k), int | float) and not isinstance(row.get(k), bool) for k in keys
    )
