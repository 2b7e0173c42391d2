"""What a model gets wrong: its most confident mistakes, and a fixed sample of each class to compare them with.

The images go through :class:`cnnzoo.data.DeviceBatches` in order and unaugmented, exactly as
:func:`cnnzoo.evaluate` feeds a test split: a :class:`cnnzoo.data.ModelView` says how (uint8 / 255, resized to
the model's input, normalised with the run's mean and std). A "mistake" here is one the evaluation counted.
One pass, no autograd, a batch at a time; only one loss per image is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cnnzoo.base.modes import eval_mode
from cnnzoo.data.batches import ModelView

__all__ = ["Mistake", "class_samples", "model_inputs", "predictions", "top_losses"]


@dataclass(frozen=True)
class Mistake:
    """Image ``index`` of class ``true`` taken for ``predicted`` with softmax ``probability``; ``loss`` is its
    cross-entropy (no label smoothing)."""

    index: int
    true: int
    predicted: int
    probability: float
    loss: float


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def model_inputs(
    images: Tensor,
    labels: Tensor | None = None,
    *,
    view: ModelView,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(x, labels)`` batches of uint8 ``images`` (``[N, C, H, W]`` or ``[N, H, W]``) as the model sees them
    in evaluation, in order (``view`` without mean and std: only scaled to [0, 1], the picture to show)."""
    if labels is None:
        labels = torch.zeros(images.shape[0], dtype=torch.int64)
    return iter(view.batches(images, labels, batch_size=batch_size, device=device))


def predictions(model: nn.Module, images: Tensor, view: ModelView, *, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """The predicted class and its probability for every image (CPU tensors, in the images' order), as
    :func:`cnnzoo.evaluate` would see them: the run's input size and normalisation (``view``), eval mode."""
    device = _device(model)
    predicted, confidence = [], []
    with eval_mode(model), torch.inference_mode():
        for x, _ in model_inputs(images, view=view, batch_size=batch_size, device=device):
            top, pred = model(x).float().softmax(dim=1).max(dim=1)
            predicted.append(pred.cpu())
            confidence.append(top.cpu())
    if not predicted:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0)
    return torch.cat(predicted), torch.cat(confidence)


def top_losses(
    model: nn.Module, images: Tensor, labels: Tensor, view: ModelView, *, k: int = 16, batch_size: int = 512
) -> list[Mistake]:
    """The ``k`` misclassified images with the highest loss (the most confident mistakes), highest first;
    fewer when the model makes fewer mistakes. Ties keep the images' order. ``view``: how the model sees them."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    device = _device(model)
    losses, predicted, confidence = [], [], []
    with eval_mode(model), torch.inference_mode():
        for x, y in model_inputs(images, labels, view=view, batch_size=batch_size, device=device):
            logits = model(x).float()
            probs = logits.softmax(dim=1)
            top, pred = probs.max(dim=1)
            loss = F.cross_entropy(logits, y, reduction="none")
            losses.append(torch.where(pred != y, loss, torch.full_like(loss, -1.0)))  # -1: not a mistake
            predicted.append(pred)
            confidence.append(top)
    if not losses:
        return []
    loss, pred, conf = (torch.cat(t).cpu() for t in (losses, predicted, confidence))
    order = torch.sort(loss, descending=True, stable=True).indices
    chosen = [i for i in order[: max(0, k)].tolist() if loss[i] >= 0]
    return [Mistake(i, int(labels[i]), int(pred[i]), float(conf[i]), float(loss[i])) for i in chosen]


def class_samples(
    labels: Tensor, per_class: int = 8, seed: int = 0, *, num_classes: int | None = None
) -> dict[int, list[int]]:
    """Up to ``per_class`` indices of each class in ``labels``, drawn with ``seed`` (the same every time),
    in ascending order. ``num_classes``: every class ``0..num_classes-1`` gets a key, empty when absent."""
    labels = labels.detach().cpu().long().flatten()
    g = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(labels.numel(), generator=g)
    shuffled = labels[order]
    classes = range(num_classes) if num_classes is not None else sorted(set(labels.tolist()))
    return {int(c): sorted(order[shuffled == c][:per_class].tolist()) for c in classes}
