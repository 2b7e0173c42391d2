"""What a training run carries from step to step: :class:`TrainState` (model, optimizer, schedule, the position within
the epoch, the history), the RNG states it saves and restores (so a resumed run on the CPU is bit-identical to an
uninterrupted one), the epoch's device-side totals, :class:`EvalResult`, and the :class:`Callback` interface through
which everything a run writes or shows is done (the loop itself, :mod:`cnnzoo.train.loop`, prints nothing).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnnzoo.base.devices import DeviceSetup, ThreadGovernor
from cnnzoo.train.config import TrainConfig

__all__ = ["Callback", "EpochTotals", "EvalResult", "TrainState", "restore_rng_state", "rng_state", "seed_everything"]


# ------------------------------------------------------------------------------------------------
# set-up: random seeds, init, optimizer, schedule, batches
# ------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed PyTorch (all devices), NumPy's and Python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


# ------------------------------------------------------------------------------------------------
# RNG state: captured into checkpoints so a resumed run draws the same dropout masks
# ------------------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The global RNG states as tensors and plain Python values (loadable with ``weights_only``)."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": torch.tensor(py_internal, dtype=torch.int64), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Undo :func:`rng_state`. CUDA states are restored only when the run is on as many GPUs."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["internal"].tolist()), p["gauss"]))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


# ------------------------------------------------------------------------------------------------
# state and callbacks
# ------------------------------------------------------------------------------------------------
@dataclass
class EpochTotals:
    """Running sums of one epoch. ``loss_sum``/``correct`` live on the device until read."""

    loss_sum: Tensor
    correct: Tensor
    count: int = 0
    seconds: float = 0.0
    step: int = 0  # optimizer steps done in this epoch
    last_lr: float = 0.0

    @classmethod
    def zeros(cls, device: torch.device) -> EpochTotals:
        return cls(torch.zeros((), device=device), torch.zeros((), dtype=torch.int64, device=device))

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss_sum": self.loss_sum.detach().cpu(),
            "correct": self.correct.detach().cpu(),
            "count": self.count,
            "seconds": self.seconds,
            "step": self.step,
            "last_lr": self.last_lr,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], device: torch.device) -> EpochTotals:
        return cls(
            d["loss_sum"].to(device),
            d["correct"].to(device),
            int(d["count"]),
            float(d["seconds"]),
            int(d["step"]),
            float(d["last_lr"]),
        )


@dataclass
class TrainState:
    """Everything :func:`fit` carries from step to step, and what a checkpoint must hold to resume.

    ``epoch`` counts completed epochs; ``partial`` holds the unfinished epoch's totals when fit stopped
    between two steps (an interrupt), else None.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    config: TrainConfig
    setup: DeviceSetup
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: EpochTotals | None = None
    stopped: bool = False
    last_eval: EvalResult | None = None
    last_val: EvalResult | None = None  # the last epoch's validation (None without a validation split)
    threads: ThreadGovernor | None = None  # re-decides the CPU threads as the machine's load changes

    def resume_dict(self) -> dict[str, Any]:
        """Training progress as plain data (the checkpoint adds the model itself)."""
        return {
            "epoch": self.epoch,
            "history": [dict(row) for row in self.history],
            "partial": self.partial.to_dict() if self.partial is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
        }

    def load_resume_dict(self, d: Mapping[str, Any]) -> None:
        """Restore :meth:`resume_dict` output (RNG states included)."""
        self.optimizer.load_state_dict(d["optimizer"])
        self.scheduler.load_state_dict(d["scheduler"])
        self.epoch = int(d["epoch"])
        self.history = [dict(row) for row in d["history"]]
        partial = d.get("partial")
        self.partial = EpochTotals.from_dict(partial, self.setup.device) if partial else None
        restore_rng_state(d["rng"])


class Callback:
    """Hooks :func:`fit` calls; subclass and override what you need. Give callbacks to rank 0 only.

    Nothing here runs per batch: ``on_log`` comes once per log interval (every :data:`LOG_EVERY` steps or
    :data:`LOG_SECONDS` seconds), when the engine reads its device accumulators anyway.
    """

    def on_train_start(self, state: TrainState) -> None:
        """Before the first step (after a resume has been restored)."""

    def on_epoch_start(self, state: TrainState, steps: int) -> None:
        """Before epoch ``state.epoch + 1``'s first step; the epoch has ``steps`` training steps."""

    def on_log(self, state: TrainState, totals: EpochTotals) -> None:
        """At a log interval, and once after the epoch's last training step: the running ``totals``."""

    def on_epoch_end(self, state: TrainState) -> None:
        """After an epoch and its evaluation; ``state.history[-1]`` is the new row."""

    def on_stop(self, state: TrainState) -> None:
        """fit stopped early because ``should_stop()`` said so; ``state.partial`` may hold a half epoch."""

    def close(self) -> None:
        """Release what the callback holds (files, writers); whoever made it calls this after training."""


@dataclass
class EvalResult:
    """Test-set results. ``confusion[i, j]`` counts images of true class ``i`` predicted as ``j``."""

    accuracy: float
    loss: float
    count: int
    confusion: Tensor
    seconds: float = 0.0
    confidence: Tensor | None = None  # [2, bins]: predictions and correct ones by top probability (metrics)

    @property
    def per_class_accuracy(self) -> list[float]:
        totals = self.confusion.sum(dim=1).clamp_min(1)
        return (self.confusion.diagonal().double() / totals.double()).tolist()
