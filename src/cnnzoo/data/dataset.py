"""The in-memory image-classification dataset every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor

from cnnzoo.data.batches import channel_stats

__all__ = ["ImageDataset"]


@dataclass(eq=False)
class ImageDataset:
    """Train and test splits as uint8 image tensors and int64 label tensors.

    Images are ``[N, H, W]`` (grayscale) or ``[N, C, H, W]``; ``classes[i]`` names label ``i``;
    ``source`` says where the files were found (a directory), for messages and run records.
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

    @property
    def in_channels(self) -> int:
        return 1 if self.train_images.dim() == 3 else int(self.train_images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.train_images.shape[-2:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) of the training images on the [0, 1] scale."""
        return channel_stats(self.train_images)

    def class_counts(self, split: str = "train") -> list[int]:
        labels = self.train_labels if split == "train" else self.test_labels
        return torch.bincount(labels, minlength=self.num_classes).tolist()
