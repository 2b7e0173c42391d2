"""AlexNet (D2L 7.1), the book's single-tower, one-channel version.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural Networks" (2012).

As in the book: an 11x11 stride-4 convolution with padding 1, a 5x5 and three 3x3 convolutions, three
3x3 stride-2 max-pools, then 6400 (256x5x5) -> 4096 -> 4096 -> classes with dropout 0.5; no local
response normalization and no two-GPU split (as in D2L).

Differences from the book, and why:

* ``in_channels``, ``num_classes`` and ``dropout`` are arguments (the book fixes 1, 10 and 0.5).
* The classifier takes a fixed 256x5x5 feature map, as in the book, so only inputs from 193x193 to
  224x224 fit; the registry refuses the others with a one-line error instead of letting ``nn.Linear``
  fail. At 28x28 (Fashion-MNIST unresized) the network cannot run at all: resize to 224.
"""

from __future__ import annotations

from torch import nn

from cnnzoo.models.registry import BookTraining, register_model

__all__ = ["alexnet"]


@register_model(input_size=224, min_input_size=193, max_input_size=224, book_training=BookTraining(0.01, 128, 224))
def alexnet(*, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> nn.Sequential:
    """AlexNet: 5 convolutions, 3 max-pools, 6400-4096-4096 MLP with dropout (D2L 7.1)."""
    return nn.Sequential(
        # A large 11x11 window with stride 4 to shrink the image fast; many more channels than LeNet.
        nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        # Three 3x3 convolutions; no pooling between them.
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        # The fully connected layers hold most of the weights; dropout keeps them from overfitting.
        nn.Linear(256 * 5 * 5, 4096), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(4096, num_classes),
    )  # fmt: skip
