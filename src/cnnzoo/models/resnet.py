"""ResNet (D2L 8.6): the book's ResNet-18, and torchvision-compatible ResNet-34/50/101/152.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (2015).

``resnet18`` is the book's network: a 7x7 stride-2 stem with batch norm and a 3x3 stride-2 max-pool
(``b1``), four stages of two :class:`Residual` blocks (``b2``-``b5``; the first block of ``b3``-``b5``
halves H and W and doubles the channels, with a strided 1x1 convolution on the shortcut), global average
pooling and one linear layer. Its convolutions keep their biases, as in the book, so it has
more parameters than torchvision's ``resnet18`` and a different ``state_dict`` layout.

``resnet34`` ... ``resnet152`` are the deeper ResNets the book mentions, laid out like torchvision's
(``conv1``, ``bn1``, ``layer1``-``layer4``, ``fc``; bias-free convolutions; the projection shortcut
``downsample`` = 1x1 conv + norm; the :class:`Bottleneck` block with the stride on its 3x3 convolution,
"ResNet v1.5", for 50 and up), so with ``in_channels=3, num_classes=1000`` torchvision's weights load
with ``strict=True`` and give the same outputs. Their initialization is torchvision's.

``small_input=True`` (every ResNet here) swaps the stem for a 3x3 stride-1 convolution and drops the
max-pool, so a 28x28 image reaches the last stage as 4x4 instead of 1x1 and needs no resizing.

Differences from the book, and why:

* Blocks take ``norm_layer`` (e.g. cnnzoo's hand-written :class:`~cnnzoo.models.batchnorm.BatchNorm2d`).
* The book's unused ``self.relu`` module is gone and ``if self.conv3:`` (truthiness of a module) became
  ``is not None``; the book's in-place ``Y += X`` is kept (it is safe: ``Y`` is a fresh tensor).
* ``in_channels`` and ``num_classes`` are arguments (the book fixes 1 and 10); initialization of
  ``resnet18`` is PyTorch's default (the book's ``train_ch6`` re-initializes with Xavier at train time).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from cnnzoo.models.registry import BookTraining, register_model

__all__ = ["BasicBlock", "Bottleneck", "Residual", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]

NormLayer = Callable[[int], nn.Module]


def stem(
    in_channels: int, small_input: bool, norm_layer: NormLayer, *, bias: bool = True, inplace: bool = False
) -> list[nn.Module]:
    """ResNet's stem, which DenseNet reuses: a 7x7 stride-2 convolution to 64 channels, norm, ReLU and a 3x3
    stride-2 max-pool; with ``small_input`` a 3x3 stride-1 convolution and no pool. The book's ``b1`` keeps
    the convolution's bias; torchvision's layouts drop it (``bias=False``) and use an in-place ReLU."""
    if small_input:
        conv = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=bias)
    else:
        conv = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=bias)
    layers = [conv, norm_layer(64), nn.ReLU(inplace=inplace)]
    if not small_input:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return layers


def stem_options(assemble: Callable[[int, int, bool, NormLayer], nn.Sequential]) -> Callable[..., nn.Sequential]:
    """The builder of a network with ResNet's :func:`stem` (the ResNets and DenseNets), taking the keywords
    every such network takes: ``num_classes``, ``in_channels``, ``small_input`` (the 28x28 stem) and
    ``norm_layer``. ``assemble`` gets them in that order; the builder keeps its name and docstring."""

    def build(
        *,
        num_classes: int = 10,
        in_channels: int = 1,
        small_input: bool = False,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> nn.Sequential:
        return assemble(num_classes, in_channels, small_input, norm_layer)

    for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(build, attribute, getattr(assemble, attribute))
    return build


# ----------------------------------------------------------------------------------------------
# The book's ResNet-18
# ----------------------------------------------------------------------------------------------
class Residual(nn.Module):
    """The book's residual block: two 3x3 conv + norm, ReLU between, the input added before the last ReLU.

    ``use_1x1conv`` puts a 1x1 convolution (stride ``strides``) on the shortcut, needed whenever the
    block changes the channel count or the resolution.
    """

    def __init__(
        self,
        input_channels: int,
        num_channels: int,
        use_1x1conv: bool = False,
        strides: int = 1,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = norm_layer(num_channels)
        self.bn2 = norm_layer(num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        if self.conv3 is not None:
            x = self.conv3(x)
        y += x
        return F.relu(y)


def resnet_stage(
    input_channels: int,
    num_channels: int,
    num_residuals: int,
    first_block: bool = False,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> nn.Sequential:
    """``num_residuals`` blocks; unless ``first_block``, the first one halves H and W and changes channels."""
    blocks = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blocks.append(Residual(input_channels, num_channels, True, 2, norm_layer))
        else:
            blocks.append(Residual(num_channels, num_channels, norm_layer=norm_layer))
    return nn.Sequential(*blocks)


@register_model(input_size=96, min_input_size=1, book_training=BookTraining(0.05, 256, 96))
@stem_options
def resnet18(num_classes: int, in_channels: int, small_input: bool, norm_layer: NormLayer) -> nn.Sequential:
    """ResNet-18 as the book builds it: stem b1, four stages of two Residual blocks (D2L 8.6)."""
    model = nn.Sequential(
        nn.Sequential(*stem(in_channels, small_input, norm_layer)),  # b1
        resnet_stage(64, 64, 2, first_block=True, norm_layer=norm_layer),
        resnet_stage(64, 128, 2, norm_layer=norm_layer),
        resnet_stage(128, 256, 2, norm_layer=norm_layer),
        resnet_stage(256, 512, 2, norm_layer=norm_layer),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(512, num_classes),
    )
    if small_input:
        model.default_input_size = 28
    return model


# ----------------------------------------------------------------------------------------------
# torchvision-compatible ResNet-34/50/101/152
# ----------------------------------------------------------------------------------------------
def _conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class _TorchvisionBlock(nn.Module):
    """torchvision's residual block: ``residual(x)`` plus the shortcut (the identity, or ``downsample`` where the
    block changes the channels or the resolution), then ReLU. Subclasses make the residual path's layers."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.make_layers(inplanes, planes, stride, norm_layer)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def make_layers(self, inplanes: int, planes: int, stride: int, norm_layer: NormLayer) -> None:
        raise NotImplementedError

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + identity)


class BasicBlock(_TorchvisionBlock):
    """Two 3x3 conv + norm layers (the first carrying the stride); torchvision's layout."""

    def make_layers(self, inplanes: int, planes: int, stride: int, norm_layer: NormLayer) -> None:
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(_TorchvisionBlock):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4, each with norm; torchvision's layout."""

    expansion = 4

    def make_layers(self, inplanes: int, planes: int, stride: int, norm_layer: NormLayer) -> None:
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = norm_layer(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


def _make_layer(
    block: type[_TorchvisionBlock],
    inplanes: int,
    planes: int,
    blocks: int,
    stride: int,
    norm_layer: NormLayer,
) -> nn.Sequential:
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            _conv1x1(inplanes, planes * block.expansion, stride), norm_layer(planes * block.expansion)
        )
    layers = [block(inplanes, planes, stride, downsample, norm_layer)]
    layers += [block(planes * block.expansion, planes, norm_layer=norm_layer) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def _resnet(
    block: type[_TorchvisionBlock],
    blocks_per_stage: tuple[int, int, int, int],
    num_classes: int,
    in_channels: int,
    small_input: bool,
    norm_layer: NormLayer,
) -> nn.Sequential:
    """A Sequential whose child names are torchvision's attribute names, so ``state_dict`` keys match."""
    names = ("conv1", "bn1", "relu", "maxpool")
    layers = list(zip(names, stem(in_channels, small_input, norm_layer, bias=False, inplace=True)))
    stages, inplanes = [], 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), blocks_per_stage)):
        stride = 1 if i == 0 else 2
        stages.append((f"layer{i + 1}", _make_layer(block, inplanes, planes, blocks, stride, norm_layer)))
        inplanes = planes * block.expansion
    head = [
        ("avgpool", nn.AdaptiveAvgPool2d((1, 1))),
        ("flatten", nn.Flatten()),
        ("fc", nn.Linear(512 * block.expansion, num_classes)),
    ]
    model = nn.Sequential(OrderedDict(layers + stages + head))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):  # torchvision's initialization; norm layers start at 1 / 0 already
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    if small_input:
        model.default_input_size = 28
    return model


def _torchvision_depth(
    name: str, block: type[_TorchvisionBlock], blocks_per_stage: tuple[int, int, int, int]
) -> Callable[..., nn.Sequential]:
    """Register torchvision's ResNet of that depth: the builder every registered model has, for one layout."""

    def assemble(num_classes: int, in_channels: int, small_input: bool, norm_layer: NormLayer) -> nn.Sequential:
        return _resnet(block, blocks_per_stage, num_classes, in_channels, small_input, norm_layer)

    kind = "basic" if block is BasicBlock else "bottleneck"
    assemble.__name__ = assemble.__qualname__ = name
    depth = name.removeprefix("resnet")
    assemble.__doc__ = f"ResNet-{depth}: {kind} blocks {blocks_per_stage}, torchvision layout (D2L 8.6)."
    return register_model(input_size=96, min_input_size=1)(stem_options(assemble))


resnet34 = _torchvision_depth("resnet34", BasicBlock, (3, 4, 6, 3))
resnet50 = _torchvision_depth("resnet50", Bottleneck, (3, 4, 6, 3))
resnet101 = _torchvision_depth("resnet101", Bottleneck, (3, 4, 23, 3))
resnet152 = _torchvision_depth("resnet152", Bottleneck, (3, 8, 36, 3))
