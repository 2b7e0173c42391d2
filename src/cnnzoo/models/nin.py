"""Network in Network (D2L 7.3).

Lin, Chen & Yan, "Network In Network" (2013).

A NiN block is one spatial convolution followed by two 1x1 convolutions (a per-pixel MLP), each with
ReLU. Four blocks with AlexNet's kernel sizes and channel counts, 3x3 stride-2 max-pools between them,
dropout 0.5 before the last block, whose ``num_classes`` channels are averaged globally into the class
scores: no fully connected layer at all.

Differences from the book, and why:

* ``in_channels``, ``num_classes`` and ``dropout`` are arguments (the book fixes 1, 10 and 0.5).
* Kept from the book (and the paper's Caffe model): the last block ends in a ReLU, so the class scores
  are non-negative. It is unusual but it is the published network, and it trains.
"""

from __future__ import annotations

from torch import nn

from cnnzoo.models.registry import BookTraining, register_model

__all__ = ["nin", "nin_block"]


def nin_block(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> nn.Sequential:
    """One ``kernel_size`` convolution, then two 1x1 convolutions, each followed by ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )  # fmt: skip


@register_model(input_size=224, min_input_size=67, book_training=BookTraining(0.1, 128, 224))
def nin(*, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> nn.Sequential:
    """Network in Network: four NiN blocks and global average pooling, no dense layer (D2L 7.3)."""
    return nn.Sequential(
        nin_block(in_channels, 96, kernel_size=11, stride=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, stride=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, stride=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(dropout),
        # One channel per class, averaged over the whole image into the class score.
        nin_block(384, num_classes, kernel_size=3, stride=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )
