"""SpeedNet: a small plain CNN for training on a laptop CPU, cnnzoo's own design (not from the book).

The book has no network like this; it is here for one question, how fast a learner with two CPU cores gets
a good Fashion-MNIST model (the CPU speedrun, benchmarks/speedrun.md). It is built only from parts the book
teaches (3x3 convolutions as in VGG, batch normalization, ReLU, max pooling, global average pooling as in
NiN), arranged by measurement on the 2-core reference CPU (benchmarks/speedrun/notes.md has every
configuration tried, with its validation accuracy and its throughput against ``lenet_bn``):

* **A stride-2 3x3 stem.** A 28x28 stage costs four times a 14x14 one, and on two cores every MAC
  counts: widths (32, 64, 128) without the stride trained at 0.11x ``lenet_bn``'s speed, with it at
  0.45-0.58x (paired bursts, 1 thread, busy machine).
* **Depth where the image is 7x7.** A second 3x3 convolution at 7x7 lifted 6-epoch validation accuracy
  from 0.912-0.914 to 0.927; widening every stage by half instead, for about the same compute, gave 0.924.
* **Bias-free 3x3 convolutions with batch norm and ReLU, max pooling, then global average pooling and one
  linear layer.** The norm's shift makes a conv bias redundant, and pooling to one vector keeps the head at
  ``width x classes`` weights: 131k parameters and 3.4M MACs per 28x28 image (``speednet_wide``: 294k, 7.7M).

Layout (``speednet``, widths 32/64/128; ``speednet_wide`` 48/96/192)::

    conv 3x3 /2, 1->32   28x28 -> 14x14
    max pool 2           14x14 -> 7x7
    conv 3x3, 32->64     7x7
    conv 3x3, 64->64     7x7
    max pool 2           7x7 -> 3x3
    conv 3x3, 64->128    3x3
    global average pool, linear 128->classes

Every conv is followed by ``norm_layer`` and ReLU. Initialization is PyTorch's default. Inputs from 7x7
up work (the global pool takes any remaining size); 28x28 is the design point.

``whiten=True`` puts airbench's frozen 2x2 patch-whitening convolution (:mod:`cnnzoo.models.whitening`) and a
ReLU in front of the stem: 1 -> 8 channels, 28x28 -> 27x27, fitted to the training images when a run starts. The speed
record's recipe uses it (+0.3 to +0.5 points of validation accuracy for about 15 % more time per epoch); the
smallest input is then 8x8.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from cnnzoo.models.registry import register_model
from cnnzoo.models.whitening import PatchWhitening

__all__ = ["SpeedNet", "conv_bn", "speednet", "speednet_wide"]

NormLayer = Callable[[int], nn.Module]


def conv_bn(in_channels: int, out_channels: int, norm_layer: NormLayer, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (no bias: the norm's shift replaces it), norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
        norm_layer(out_channels),
        nn.ReLU(inplace=True),
    )


class SpeedNet(nn.Module):
    """(Patch whitening,) stem (stride 2), pool, two convs at 7x7, pool, one conv at 3x3, global average pool,
    linear."""

    def __init__(
        self,
        widths: Sequence[int],
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
        whiten: bool = False,
    ) -> None:
        super().__init__()
        stem, mid, last = widths
        # The whitened patches and their negatives through a ReLU: each direction's two halves as channels
        # (airbench uses GELU; without an activation the negatives add nothing the stem could not do).
        first = [PatchWhitening(in_channels), nn.ReLU(inplace=True)] if whiten else []
        if whiten:
            in_channels = first[0].out_channels
            self.min_input_size = 8  # 8 -> 7 -> 4 -> 2 -> 1: the last pool needs 2x2
        self.features = nn.Sequential(
            *first,
            conv_bn(in_channels, stem, norm_layer, stride=2),
            nn.MaxPool2d(2),
            conv_bn(stem, mid, norm_layer),
            conv_bn(mid, mid, norm_layer),
            nn.MaxPool2d(2),
            conv_bn(mid, last, norm_layer),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@register_model(input_size=28, min_input_size=7)
def speednet(
    *, num_classes: int = 10, in_channels: int = 1, norm_layer: NormLayer = nn.BatchNorm2d, whiten: bool = False
) -> SpeedNet:
    """SpeedNet (cnnzoo's own design): a 131k-parameter plain CNN for the 60-second CPU speedrun."""
    return SpeedNet(
        (32, 64, 128), num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, whiten=whiten
    )


@register_model(input_size=28, min_input_size=7)
def speednet_wide(
    *, num_classes: int = 10, in_channels: int = 1, norm_layer: NormLayer = nn.BatchNorm2d, whiten: bool = False
) -> SpeedNet:
    """SpeedNet at 1.5x width (cnnzoo's own design), for the 5-minute CPU speedrun."""
    return SpeedNet(
        (48, 96, 192), num_classes=num_classes, in_channels=in_channels, norm_layer=norm_layer, whiten=whiten
    )
