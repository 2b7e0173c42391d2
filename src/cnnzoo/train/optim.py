"""The optimizer and the learning-rate schedule a config asks for (stepped per batch), and Xavier-uniform
initialisation, which the book's ``train_ch6`` applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from cnnzoo.train.config import TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "xavier_init"]


def xavier_init(model: nn.Module) -> None:
    """d2l's init: ``xavier_uniform_`` on every conv and linear weight; biases keep their init."""
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``sgd`` is d2l's plain SGD; ``momentum`` is Nesterov SGD; ``adam``/``adamw`` as in PyTorch.

    Weight decay goes to conv/linear weights only: decaying biases and BatchNorm's scale pulls them
    towards zero for no regularising benefit (a standard choice since "Bag of Tricks", 2019).
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr)
    if config.optimizer == "momentum":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")  # validate_config rules this out


def lr_factor(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate multiplier of optimizer step ``k`` (0-based), for a per-batch LambdaLR.

    One LambdaLR for every schedule keeps one checkpoint format and lets warm-up compose with any of
    them. ``step``: ``gamma ** (epochs completed // step_size)``. ``cosine``: half a cosine from 1 to 0
    over the run (after the warm-up). ``onecycle``: the lr-only form of Smith's one-cycle policy as
    ``OneCycleLR`` does it by default: cosine up from 1/25 over the first 25 % of steps, cosine down
    to ~0 over the rest (momentum is not cycled).
    """
    total = max(1, config.epochs * steps_per_epoch)
    warmup = round(config.warmup_epochs * steps_per_epoch)
    schedule = config.schedule

    def factor(k: int) -> float:
        if schedule == "onecycle":
            up = max(1, int(0.25 * total))
            start, end = 1 / 25, 1 / (25 * 1e4)
            if k < up:
                return start + (1 - start) * (1 - math.cos(math.pi * k / up)) / 2
            t = min(1.0, (k - up) / max(1, total - up))
            return end + (1 - end) * (1 + math.cos(math.pi * t)) / 2
        f = 1.0
        if schedule == "step":
            f = config.gamma ** ((k // steps_per_epoch) // config.step_size)
        elif schedule == "cosine":
            t = min(1.0, max(0, k - warmup) / max(1, total - warmup))
            f = (1 + math.cos(math.pi * t)) / 2
        if k < warmup:
            f *= (k + 1) / warmup
        return f

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-batch :class:`~torch.optim.lr_scheduler.LambdaLR` following :func:`lr_factor`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
