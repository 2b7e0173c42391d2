"""LeNet-5 and LeNet with batch normalization (D2L 6.6 and 8.5).

LeCun et al., "Gradient-based learning applied to document recognition" (1998); Ioffe & Szegedy,
"Batch Normalization" (2015).

``lenet`` is the book's network: two 5x5 convolutions (the first padded by 2) with sigmoid and 2x2
average pooling, then a 120-84-classes MLP with sigmoid. ``lenet_bn`` is the book's BatchNorm LeNet
(no padding, so the classifier sees 16x4x4; a norm layer between every conv/linear layer and its
sigmoid), built on ``nn.BatchNorm2d``/``nn.BatchNorm1d``; ``lenet_bn_scratch`` is the same network on
cnnzoo's hand-written :mod:`cnnzoo.models.batchnorm`, with identical ``state_dict`` keys.

Differences from the book, and why:

* No ``Reshape`` layer: the book's ``x.view(-1, 1, 28, 28)`` hard-codes one channel and 28x28 and
  silently reinterprets any other input; the registry checks the input size instead.
* ``in_channels`` and ``num_classes`` are arguments (the book fixes 1 and 10).
* The classifier takes a fixed 16x5x5 (16x4x4 with BN) feature map, as in the book, so only inputs from
  28x28 to 31x31 fit; the registry says so instead of failing inside ``nn.Linear``.
* Initialization is PyTorch's default; the book's ``train_ch6`` re-initializes with Xavier before
  training, which is a training-recipe choice, not part of the network.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from cnnzoo.models import batchnorm
from cnnzoo.models.registry import BookTraining, register_model

__all__ = ["lenet", "lenet_bn", "lenet_bn_scratch"]


@register_model(input_size=28, min_input_size=28, max_input_size=31, book_training=BookTraining(0.9, 256, 28))
def lenet(*, num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """LeNet-5: sigmoid, average pooling, 120-84 MLP (D2L 6.6)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )  # fmt: skip


def _lenet_bn(
    num_classes: int,
    in_channels: int,
    norm2d: Callable[[int], nn.Module],
    norm1d: Callable[[int], nn.Module],
) -> nn.Sequential:
    # A norm layer after every conv/linear layer but the output one, before the sigmoid (D2L 8.5).
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5), norm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), norm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), norm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), norm1d(84), nn.Sigmoid(),
        nn.Linear(84, num_classes),
    )  # fmt: skip


# The book's batch-norm section trains its hand-written BatchNorm LeNet (lenet_bn_scratch) with lr 1.0 and batch 256,
# then the same network on nn.BatchNorm (lenet_bn) with the same values; its printed 0.830 is the first run.
@register_model(input_size=28, min_input_size=28, max_input_size=31, book_training=BookTraining(1.0, 256, 28))
def lenet_bn(*, num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """LeNet with batch normalization, on nn.BatchNorm2d/1d (D2L 8.5)."""
    return _lenet_bn(num_classes, in_channels, nn.BatchNorm2d, nn.BatchNorm1d)


@register_model(input_size=28, min_input_size=28, max_input_size=31, book_training=BookTraining(1.0, 256, 28))
def lenet_bn_scratch(*, num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """LeNet with batch normalization, on cnnzoo's hand-written BatchNorm2d/1d (D2L 8.5)."""
    return _lenet_bn(num_classes, in_channels, batchnorm.BatchNorm2d, batchnorm.BatchNorm1d)
