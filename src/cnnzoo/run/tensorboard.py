"""TensorBoard logging: each epoch's history row as scalars, for ``tensorboard --logdir runs``.

A :class:`~cnnzoo.train.state.Callback`, so it sees exactly what the run directory records (``metrics.csv``)
and nothing per batch: the hot loop stays free of host syncs. The scalars are grouped so TensorBoard draws
d2l's figure: ``loss/train`` beside ``loss/test``, ``accuracy/train`` beside ``accuracy/test``, and
``lr`` and ``throughput/images_per_sec`` on their own; the step is the epoch number (1, 2, ...).

The writer is PyTorch's ``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard``
package: ``pip install 'cnnzoo[tensorboard]'``; without it :class:`~cnnzoo.base.errors.MissingExtraError`
says so before training starts. A resumed run appends to the same directory; TensorBoard shows the
union of the event files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnzoo.base.errors import MissingExtraError
from cnnzoo.train.state import Callback, TrainState

__all__ = ["SCALARS", "TensorBoardLogger", "summary_writer_class"]

# history key -> TensorBoard tag
SCALARS = {
    "train_loss": "loss/train",
    "test_loss": "loss/test",
    "train_acc": "accuracy/train",
    "test_acc": "accuracy/test",
    "lr": "lr",
    "images_per_sec": "throughput/images_per_sec",
}


def summary_writer_class() -> type:
    """``SummaryWriter``, or :class:`MissingExtraError` naming the extra (call it early to fail fast)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError when the tensorboard package is missing
        raise MissingExtraError(
            "--tensorboard needs the 'tensorboard' package, which is not installed: pip install 'cnnzoo[tensorboard]'"
        ) from None
    return SummaryWriter


class TensorBoardLogger(Callback):
    """Write every finished epoch's scalars to ``log_dir`` (created when needed)."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.log_dir = Path(log_dir)
        self._writer: Any = summary_writer_class()(log_dir=str(self.log_dir))

    def on_train_start(self, state: TrainState) -> None:
        self._writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in state.config.to_dict().items()), 0)

    def on_epoch_end(self, state: TrainState) -> None:
        row = state.history[-1]
        for key, tag in SCALARS.items():
            value = row.get(key)
            if value is not None:
                self._writer.add_scalar(tag, float(value), int(row["epoch"]))
        self._writer.flush()

    def on_stop(self, state: TrainState) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
