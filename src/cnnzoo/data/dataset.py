"""The in-memory image-classification dataset every loader returns, and its validation hold-out."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from cnnzoo.data.batches import channel_stats

__all__ = ["VALIDATION_SEED", "ImageDataset", "auto_validation_size", "hold_out_validation"]

# The validation images are drawn with this seed whatever the run's --seed, so every run of every model
# on a dataset is selected on the same images, and runs over several seeds differ only in training.
VALIDATION_SEED = 20_260_901
AUTO_VALIDATION_MAX = 5_000  # Fashion-MNIST, MNIST, KMNIST: 5,000 of 60,000; CIFAR-10: 5,000 of 50,000


@dataclass(eq=False)
class ImageDataset:
    """Train, test and (optionally) validation splits as uint8 image tensors and int64 label tensors.

    Images are ``[N, H, W]`` (grayscale) or ``[N, C, H, W]``; ``classes[i]`` names label ``i``;
    ``source`` says where the files were found (a directory), for messages and run records. The
    validation split, when there is one, was taken out of the training images
    (:func:`hold_out_validation`): ``train_images`` are then only the images that are trained on.
    """

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    classes: list[str]
    source: str | None = None
    verified: bool = False
    extra: dict = field(default_factory=dict)
    val_images: Tensor | None = None
    val_labels: Tensor | None = None

    @property
    def in_channels(self) -> int:
        return 1 if self.train_images.dim() == 3 else int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.train_images.shape[-2:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def has_validation(self) -> bool:
        return self.val_labels is not None and self.val_labels.numel() > 0

    @cached_property
    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) of the training images on the [0, 1] scale (validation images excluded)."""
        return channel_stats(self.train_images)

    def class_counts(self, split: str = "train") -> list[int]:
        labels = {"train": self.train_labels, "test": self.test_labels, "val": self.val_labels}[split]
        if labels is None:
            return [0] * self.num_classes
        return torch.bincount(labels, minlength=self.num_classes).tolist()


def auto_validation_size(n_train: int) -> int:
    """The default hold-out: a tenth of the training images, at most :data:`AUTO_VALIDATION_MAX`."""
    return min(AUTO_VALIDATION_MAX, n_train // 10)


def _stratified_take(labels: np.ndarray, num_classes: int, size: int, seed: int) -> np.ndarray:
    """Sorted indices of about ``size`` images, each class in proportion to its share (largest remainders
    round up), never a class's last image; each class draws from its own stream seeded ``(seed, class)``."""
    counts = np.bincount(labels, minlength=num_classes)
    quota = size * counts / max(1, counts.sum())
    take = np.floor(quota).astype(np.int64)
    for c in np.argsort(-(quota - take), kind="stable")[: size - int(take.sum())]:
        take[c] += 1
    take = np.minimum(take, np.maximum(counts - 1, 0))
    chosen = [
        np.random.default_rng([seed, c]).permutation(np.flatnonzero(labels == c))[: take[c]] for c in range(num_classes)
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def hold_out_validation(data: ImageDataset, size: int | None = None, seed: int = VALIDATION_SEED) -> ImageDataset:
    """``data`` with a stratified, seeded validation split taken out of its training images.

    ``size`` None takes :func:`auto_validation_size`; 0 returns ``data`` unchanged (no validation: the
    book's set-up). The same ``data``, ``size`` and ``seed`` always give the same split. A dataset that
    already has a validation split is returned as it is.
    """
    if data.val_labels is not None:
        return data
    n_train = int(data.train_labels.numel())
    size = auto_validation_size(n_train) if size is None else size
    if size <= 0:
        return data
    val_idx = torch.from_numpy(_stratified_take(data.train_labels.numpy(), data.num_classes, size, seed))
    keep = torch.ones(n_train, dtype=torch.bool)
    keep[val_idx] = False
    return dataclasses.replace(
        data,
        train_images=data.train_images[keep],
        train_labels=data.train_labels[keep],
        val_images=data.train_images[val_idx],
        val_labels=data.train_labels[val_idx],
        extra={**data.extra, "validation": {"images": int(val_idx.numel()), "seed": seed, "of_train": n_train}},
    )
