"""DenseNet (D2L 8.7): the book's small DenseNet and a torchvision-compatible DenseNet-121.

Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks" (2016).

A dense block concatenates every layer's output to its input on the channel axis, so each layer sees
the features of all the layers before it; a transition layer (norm, ReLU, 1x1 conv, 2x2 average pool)
halves the channels and the resolution between blocks. Layers are "pre-activation": norm, ReLU, conv.

``densenet`` is the book's network: ResNet's stem (7x7 stride-2 conv, norm, ReLU, 3x3 stride-2 max-pool),
four dense blocks of four 3x3 conv blocks with growth rate 32 (each block adds 128 channels), transitions
halving the channels (64 -> 192 -> 96 -> 224 -> 112 -> 240 -> 120 -> 248), then norm, ReLU, global
average pooling and a linear layer. Its convolutions keep their biases, as in the book.

``densenet121`` is laid out like torchvision's (``features.conv0`` ... ``features.denseblock1.denselayer1``
... ``features.norm5``, ``classifier``): blocks of (6, 12, 24, 16) bottleneck layers (norm, ReLU, 1x1
conv to 4 x growth, norm, ReLU, 3x3 conv to growth), bias-free convolutions and torchvision's
initialization, so with ``in_channels=3, num_classes=1000`` torchvision's weights load with
``strict=True`` and give the same outputs.

``small_input=True`` swaps the stem for a 3x3 stride-1 convolution without max-pool, so 28x28 images
train without resizing (three transitions take 28 to 3).

Differences from the book, and why:

* Blocks take ``norm_layer`` (e.g. cnnzoo's hand-written :class:`~cnnzoo.models.batchnorm.BatchNorm2d`).
* ``in_channels`` and ``num_classes`` are arguments (the book fixes 1 and 10); initialization of
  ``densenet`` is PyTorch's default (the book's ``train_ch6`` re-initializes with Xavier at train time).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnzoo.models.registry import BookTraining, register_model
from cnnzoo.models.resnet import NormLayer, stem, stem_options

__all__ = ["DenseBlock", "conv_block", "densenet", "densenet121", "transition_block"]


# ----------------------------------------------------------------------------------------------
# The book's DenseNet
# ----------------------------------------------------------------------------------------------
def conv_block(input_channels: int, num_channels: int, norm_layer: NormLayer = nn.BatchNorm2d) -> nn.Sequential:
    """Norm, ReLU, 3x3 convolution (ResNet v2's pre-activation order)."""
    return nn.Sequential(
        norm_layer(input_channels), nn.ReLU(), nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1)
    )


class DenseBlock(nn.Module):
    """``num_convs`` conv blocks; each one's output is concatenated to its input on the channel axis.

    Output channels: ``input_channels + num_convs * num_channels`` (``num_channels`` is the growth rate).
    """

    def __init__(
        self,
        num_convs: int,
        input_channels: int,
        num_channels: int,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.out_channels = input_channels + num_convs * num_channels
        self.net = nn.Sequential(
            *(conv_block(input_channels + i * num_channels, num_channels, norm_layer) for i in range(num_convs))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.net:
            x = torch.cat((x, block(x)), dim=1)
        return x


def transition_block(input_channels: int, num_channels: int, norm_layer: NormLayer = nn.BatchNorm2d) -> nn.Sequential:
    """Norm, ReLU, 1x1 convolution to ``num_channels``, 2x2 stride-2 average pool."""
    return nn.Sequential(
        norm_layer(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )  # fmt: skip


@register_model(input_size=96, min_input_size=29, book_training=BookTraining(0.1, 256, 96))
@stem_options
def densenet(num_classes: int, in_channels: int, small_input: bool, norm_layer: NormLayer) -> nn.Sequential:
    """DenseNet as the book builds it: four dense blocks of four conv blocks, growth rate 32 (D2L 8.7)."""
    b1 = nn.Sequential(*stem(in_channels, small_input, norm_layer))  # ResNet's
    num_channels, growth_rate, num_convs_in_dense_blocks = 64, 32, (4, 4, 4, 4)
    blocks: list[nn.Module] = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blocks.append(DenseBlock(num_convs, num_channels, growth_rate, norm_layer))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:  # a transition halving the channels between blocks
            blocks.append(transition_block(num_channels, num_channels // 2, norm_layer))
            num_channels //= 2
    model = nn.Sequential(
        b1,
        *blocks,
        norm_layer(num_channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(num_channels, num_classes),
    )
    if small_input:
        model.default_input_size, model.min_input_size = 28, 8
    return model


# ----------------------------------------------------------------------------------------------
# torchvision-compatible DenseNet-121
# ----------------------------------------------------------------------------------------------
class _DenseLayer(nn.Module):
    """Bottleneck dense layer: norm, ReLU, 1x1 conv to ``bn_size * growth_rate``, norm, ReLU, 3x3 conv."""

    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.norm1 = norm_layer(num_input_features)
        self.relu1 = nn.ReLU()  # not in place: with a norm_layer like nn.Identity it would overwrite x
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = norm_layer(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottleneck = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(bottleneck)))


class _DenseBlock(nn.ModuleDict):
    """torchvision's dense block: ``denselayer1`` ... ``denselayerN``, outputs concatenated."""

    def __init__(
        self, num_layers: int, num_input_features: int, bn_size: int, growth_rate: int, norm_layer: NormLayer
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, norm_layer)
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            x = torch.cat((x, layer(x)), dim=1)
        return x


def _transition(num_input_features: int, num_output_features: int, norm_layer: NormLayer) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            norm=norm_layer(num_input_features),
            relu=nn.ReLU(inplace=True),
            conv=nn.Conv2d(num_input_features, num_output_features, kernel_size=1, bias=False),
            pool=nn.AvgPool2d(kernel_size=2, stride=2),
        )
    )


@register_model(input_size=96, min_input_size=29)
@stem_options
def densenet121(num_classes: int, in_channels: int, small_input: bool, norm_layer: NormLayer) -> nn.Sequential:
    """DenseNet-121: dense blocks (6, 12, 24, 16), growth rate 32, bottleneck 4x, torchvision layout (D2L 8.7)."""
    growth_rate, block_config, bn_size = 32, (6, 12, 24, 16), 4
    names = ("conv0", "norm0", "relu0", "pool0")
    features = nn.Sequential(
        OrderedDict(zip(names, stem(in_channels, small_input, norm_layer, bias=False, inplace=True)))
    )
    num_features = 64  # the stem's
    for i, num_layers in enumerate(block_config):
        block = _DenseBlock(num_layers, num_features, bn_size, growth_rate, norm_layer)
        features.add_module(f"denseblock{i + 1}", block)
        num_features += num_layers * growth_rate
        if i != len(block_config) - 1:
            features.add_module(f"transition{i + 1}", _transition(num_features, num_features // 2, norm_layer))
            num_features //= 2
    features.add_module("norm5", norm_layer(num_features))
    model = nn.Sequential(
        OrderedDict(
            features=features,
            relu=nn.ReLU(inplace=True),
            avgpool=nn.AdaptiveAvgPool2d((1, 1)),
            flatten=nn.Flatten(),
            classifier=nn.Linear(num_features, num_classes),
        )
    )
    for m in model.modules():  # torchvision's initialization
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
        elif isinstance(m, nn.Linear):
            nn.init.constant_(m.bias, 0)
    if small_input:
        model.default_input_size, model.min_input_size = 28, 8
    return model
