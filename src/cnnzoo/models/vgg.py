"""VGG-11 (D2L 7.2).

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition" (2014).

A VGG block is ``num_convs`` 3x3 convolutions (padding 1) with ReLU, then a 2x2 stride-2 max-pool. VGG-11
is five blocks with ``conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))`` and a
``C x 7 x 7 -> 4096 -> 4096 -> classes`` MLP with dropout 0.5. ``vgg11_small`` divides every block's
channels by 4 (the book trains that one: the full network is too slow for a notebook), keeping the
4096-wide MLP as the book does.

Differences from the book, and why:

* ``in_channels``, ``num_classes`` and ``dropout`` are arguments (the book fixes 1, 10 and 0.5).
* The classifier takes a fixed ``C x 7 x 7`` feature map, as in the book, so only 224x224 to 255x255
  inputs fit; the registry says so instead of letting ``nn.Linear`` fail.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from cnnzoo.models.registry import BookTraining, register_model

__all__ = ["VGG11_ARCH", "vgg", "vgg11", "vgg11_small", "vgg_block"]

#: (number of convolutions, output channels) of each VGG-11 block.
VGG11_ARCH: tuple[tuple[int, int], ...] = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """``num_convs`` resolution-keeping 3x3 conv + ReLU layers, then a 2x2 max-pool that halves H and W."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(
    conv_arch: Sequence[tuple[int, int]],
    *,
    num_classes: int = 10,
    in_channels: int = 1,
    dropout: float = 0.5,
) -> nn.Sequential:
    """VGG blocks as given by ``conv_arch``, then the 4096-4096 MLP; expects 224x224 inputs."""
    blocks = []
    for num_convs, out_channels in conv_arch:
        blocks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    side = 224 // 2 ** len(conv_arch)  # each block halves the side: 224 -> 7 after five
    return nn.Sequential(
        *blocks,
        nn.Flatten(),
        nn.Linear(in_channels * side * side, 4096), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    )  # fmt: skip


@register_model(input_size=224, min_input_size=224, max_input_size=255)
def vgg11(*, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> nn.Sequential:
    """VGG-11: 8 convolutions in 5 blocks, 4096-4096 MLP (D2L 7.2)."""
    return vgg(VGG11_ARCH, num_classes=num_classes, in_channels=in_channels, dropout=dropout)


@register_model(input_size=224, min_input_size=224, max_input_size=255, book_training=BookTraining(0.05, 128, 224))
def vgg11_small(*, num_classes: int = 10, in_channels: int = 1, dropout: float = 0.5) -> nn.Sequential:
    """VGG-11 with a quarter of the channels, the version the book trains (D2L 7.2)."""
    small_arch = [(num_convs, channels // 4) for num_convs, channels in VGG11_ARCH]
    return vgg(small_arch, num_classes=num_classes, in_channels=in_channels, dropout=dropout)
