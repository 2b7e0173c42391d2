"""The optimizer and the learning-rate schedule a config asks for (stepped per batch), Xavier-uniform
initialisation, which the book's ``train_ch6`` applies, and :class:`Muon`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from cnnzoo.train.config import TrainConfig

__all__ = ["Muon", "build_optimizer", "build_scheduler", "newton_schulz", "parameter_groups", "xavier_init"]


def xavier_init(model: nn.Module) -> None:
    """d2l's init: ``xavier_uniform_`` on every conv and linear weight; biases keep their init."""
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The optimizer's parameter groups for ``config``, in the order a checkpoint's optimizer state holds them.

    Weight decay goes to conv/linear weights only: decaying biases and BatchNorm's scale pulls them towards zero
    for no regularising benefit (a standard choice since "Bag of Tricks", 2019). ``muon`` puts the conv filters
    in a group of their own, last (the history's lr column is the first group's, the recipe's ``lr``), at
    ``muon_lr`` and without weight decay, as Keller Jordan's speed records do.
    """
    filters, decay, no_decay = [], [], []
    for p in model.parameters():
        if p.requires_grad:
            if config.optimizer == "muon" and p.ndim == 4:
                filters.append(p)
            else:
                (decay if p.ndim > 1 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
        {"params": filters, "weight_decay": 0.0, "lr": config.muon_lr, "orthogonal": True},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """``sgd`` is d2l's plain SGD; ``momentum`` is Nesterov SGD; ``adam``/``adamw`` as in PyTorch; ``muon`` is
    :class:`Muon` for the conv filters at ``muon_lr`` and Nesterov SGD at ``lr`` for the rest. The groups are
    :func:`parameter_groups`'."""
    groups = parameter_groups(model, config)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr)
    if config.optimizer == "momentum":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    if config.optimizer == "muon":
        return Muon(groups, lr=config.lr, momentum=config.momentum)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")  # validate_config rules this out


# Keller Jordan's quintic Newton-Schulz coefficients: five steps take a matrix's singular values to about 0.7-1.2.
_NS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """An approximately orthogonal matrix with ``g``'s singular vectors: ``U V^T`` of ``g = U S V^T``, with the
    singular values only brought near 1 (what Muon needs, far cheaper than an SVD)."""
    a, b, c = _NS
    x = g / (g.norm() + 1e-7)
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        m = x @ x.T
        x = a * x + (b * m + c * m @ m) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Nesterov SGD whose update of each conv filter bank is orthogonalised (Muon, Keller Jordan 2024).

    Groups with ``orthogonal=True`` (:func:`build_optimizer` puts the 4-D conv weights there) take the
    Nesterov momentum update, reshape it to ``[out_channels, in_channels * kh * kw]``, replace it with
    :func:`newton_schulz` of it and scale that by ``sqrt(max(1, rows / cols))``, so every filter bank moves by
    the same spectral amount whatever its gradient's scale. The other groups are exactly PyTorch's
    ``SGD(nesterov=True)`` (weight decay added to the gradient first). The speed records use Muon for the
    filters and Nesterov SGD for biases, norms and the head, as here; benchmarks/speedrun/notes.md measures it
    on Fashion-MNIST (+0.3 to +0.5 points of validation accuracy at the same epochs).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "orthogonal": False}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            m = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(m).add_(d)
                update = d.add(buf, alpha=m)
                if group["orthogonal"]:
                    flat = update.flatten(1)
                    scale = max(1.0, flat.shape[0] / flat.shape[1]) ** 0.5
                    update = newton_schulz(flat).view_as(p).mul_(scale)
                p.add_(update, alpha=-group["lr"])
        return loss


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
