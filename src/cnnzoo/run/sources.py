"""What names a trained model on the command line and in Python: a run directory (its ``last.pt``), a checkpoint
file, or a named weight (``lenet_bn.fashion_mnist``; :mod:`cnnzoo.weights`).

:func:`load_trained` is the one place that tells them apart, so ``eval``, ``predict``, ``explain``, ``export``,
:func:`cnnzoo.load_model` and the studio take all three the same way. A path that exists wins over a weight of
the same name; a name shaped like a weight's that is neither gets the weights' close matches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.base.errors import ConfigError
from cnnzoo.base.rundirs import resolve_run_dir
from cnnzoo.models.registry import list_models
from cnnzoo.train.checkpoint import load_checkpoint, model_from_checkpoint
from cnnzoo.weights import get_weight, weight_checkpoint
from cnnzoo.weights.catalog import NAME_RE

__all__ = ["InitReport", "init_from_trained", "load_trained"]


def _is_path(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` means a file or directory: it exists, or it is not ``MODEL[@SIDE].DATASET`` with a
    registered MODEL (``last.pt`` that is missing is a missing checkpoint, not an unknown weight)."""
    p = Path(source)
    match = NAME_RE.match(str(source))  # MODEL[@SIDE].DATASET
    return p.exists() or p.is_symlink() or match is None or match["model"] not in list_models()


def load_trained(source: str | os.PathLike[str]) -> tuple[Path | None, dict[str, Any]]:
    """``(run directory, checkpoint dict)`` of a run directory or checkpoint file; ``(None, the weight as a
    checkpoint dict)`` of a weight's name (:func:`cnnzoo.weights.weight_checkpoint`)."""
    if _is_path(source):
        directory, ckpt = resolve_run_dir(source)
        return directory, load_checkpoint(ckpt)
    return None, weight_checkpoint(get_weight(str(source)))


@dataclass(frozen=True)
class InitReport:
    """What :func:`init_from_trained` took from the trained model: tensors copied, adapted, and left new."""

    source: str
    copied: tuple[str, ...]
    adapted: tuple[str, ...]  # a 1-channel first convolution spread over 3 input channels (or back)
    new: tuple[str, ...]  # not in the trained model, or of another shape: they keep their fresh init

    def describe(self) -> str:
        total = len(self.copied) + len(self.adapted) + len(self.new)
        text = f"started from {self.source}: {len(self.copied) + len(self.adapted)} of {total} tensors"
        if self.adapted:
            text += f" ({', '.join(self.adapted)} adapted to the input's channels)"
        if self.new:
            shown = ", ".join(self.new[:4]) + (", ..." if len(self.new) > 4 else "")
            text += f"; new: {shown}"
        return text


def _adapt_channels(saved: torch.Tensor, want: torch.Size) -> torch.Tensor | None:
    """A first convolution's kernel for another number of input channels, as timm's ``adapt_input_conv`` does:
    a grayscale kernel spread evenly over RGB (its response to a gray picture unchanged), or RGB summed to gray."""
    if saved.dim() != 4 or len(want) != 4 or saved.shape[0] != want[0] or saved.shape[2:] != want[2:]:
        return None
    if saved.shape[1] == 1:
        return saved.repeat(1, want[1], 1, 1) / want[1]
    if want[1] == 1:
        return saved.sum(dim=1, keepdim=True)
    return None


def init_from_trained(model: nn.Module, source: str | os.PathLike[str]) -> InitReport:
    """Copy into ``model`` every tensor of the trained model ``source`` (a run directory, a checkpoint, or a
    weight's name) whose name and shape fit; the others (a head for other classes) keep their fresh init. The two
    must be the same network: another model's parameters are refused in one line."""
    _, ckpt = load_trained(source)
    name = getattr(model, "model_name", None)
    if ckpt["model_name"] != name:
        raise ConfigError(f"--init-from {source}: it is a trained {ckpt['model_name']}, not a {name}: give one of "
                          f"{name}'s runs or weights (cnnzoo weights), or train {ckpt['model_name']}")  # fmt: skip
    saved = model_from_checkpoint(ckpt).state_dict()
    own = model.state_dict()
    copied, adapted, new = [], [], []
    with torch.no_grad():
        for key, target in own.items():
            value = saved.get(key)
            if value is not None and value.shape == target.shape:
                target.copy_(value)
                copied.append(key)
            elif value is not None and (spread := _adapt_channels(value, target.shape)) is not None:
                target.copy_(spread)
                adapted.append(key)
            else:
                new.append(key)
    if not copied:
        raise ConfigError(f"--init-from {source}: no tensor of it fits this {name}: train from scratch instead")
    label = ckpt.get("weight") or str(source)
    return InitReport(label, tuple(copied), tuple(adapted), tuple(new))
