"""A network's blocks as the book draws them: the paths data takes through a block and how they join.

:func:`block_graph` describes a module as plain data: a layer (``kind="layer"``), a sequence of blocks, or a block
whose input takes several paths that join again: Inception's four paths joined by concatenation (D2L 7.4), a
residual block's main path and its shortcut joined by addition (D2L 8.6), a dense block whose every conv block's
output is concatenated to its input (D2L 8.7), and NiN's block of one convolution followed by two 1x1 convolutions
(D2L 7.3). The studio's Zoo draws these; nothing here runs the model (a meta-device copy is enough).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnzoo.models.densenet import DenseBlock, _DenseBlock, _DenseLayer
from cnnzoo.models.googlenet import Inception
from cnnzoo.models.resnet import BasicBlock, Bottleneck, Residual

__all__ = ["BOOK_SAYS", "block_graph", "layer_label"]

# What the book says each kind of block is for, in one sentence (the studio shows it with the block).
BOOK_SAYS = {
    "inception": "The book (7.4): the four paths look at the same input through 1×1, 3×3 and 5×5 filters and a "
    "pooling, and the 1×1 convolutions first cut the channels, so that the wide filters stay cheap.",
    "residual": "The book (8.6): the shortcut lets the block learn only what it adds to its input, so a deeper "
    "network can always do at least as well as a shallower one, and gradients flow back through the addition.",
    "dense": "The book (8.7): instead of adding its input as a residual block does, each conv block concatenates "
    "its output to its input, so every later layer sees every earlier feature; transition layers keep the "
    "channels in check.",
    "nin": "The book (7.3): the two 1×1 convolutions act as a small fully connected layer at every pixel, mixing "
    "the channels without a huge dense layer at the end.",
    "batch norm": "The book (8.5): batch normalization scales each channel to zero mean and unit variance over the "
    "batch, then by a learned scale and shift, so that deep networks train faster and more stably.",
}
CONCATENATE = "concatenate (channels side by side)"
ADD = "add, then ReLU"


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _kernel(module: nn.Module) -> str:
    h, w = _pair(module.kernel_size)
    return f"{h}×{w}"


def _stride(module: nn.Module) -> str:
    stride = _pair(module.stride if module.stride is not None else module.kernel_size)
    return f", stride {stride[0]}" if stride[0] > 1 else ""


def layer_label(module: nn.Module) -> str:
    """A layer in the book's words: ``3×3 conv, 64``, ``3×3 max pool, stride 2``, ``batch norm``, ``linear, 10``."""
    if isinstance(module, nn.Conv2d):
        return f"{_kernel(module)} conv, {module.out_channels}{_stride(module)}"
    if isinstance(module, nn.MaxPool2d):
        return f"{_kernel(module)} max pool{_stride(module)}"
    if isinstance(module, nn.AvgPool2d):
        return f"{_kernel(module)} average pool{_stride(module)}"
    if isinstance(module, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        kind = "average" if isinstance(module, nn.AdaptiveAvgPool2d) else "max"
        return f"global {kind} pool" if _pair(module.output_size) == (1, 1) else f"adaptive {kind} pool"
    if isinstance(module, nn.Linear):
        return f"linear, {module.out_features}"
    if isinstance(module, nn.Dropout):
        return f"dropout {module.p:g}"
    if "Norm" in type(module).__name__:
        return "batch norm" if "Batch" in type(module).__name__ else type(module).__name__
    if isinstance(module, nn.ReLU | nn.Sigmoid | nn.Tanh | nn.Flatten | nn.Identity):
        return "ReLU" if isinstance(module, nn.ReLU) else type(module).__name__.lower()
    return type(module).__name__


def _layers(*modules: nn.Module | None) -> list[str]:
    return [layer_label(m) for m in modules if m is not None]


def _flat(module: nn.Module) -> list[str]:
    """The layers of a small block, in order, each as its label."""
    children = list(module.children())
    return [label for child in children for label in _flat(child)] if children else [layer_label(module)]


def _branching(kind: str, label: str, paths: list[list[str]], join: str) -> dict[str, Any]:
    return {"kind": kind, "label": label, "paths": paths, "join": join, "blocks": [], "why": BOOK_SAYS.get(kind, "")}


def _inception(m: Inception) -> dict[str, Any]:
    paths = [_layers(m.p1_1), _layers(m.p2_1, m.p2_2), _layers(m.p3_1, m.p3_2), _layers(m.p4_1, m.p4_2)]
    return _branching("inception", "Inception block", paths, CONCATENATE)


def _residual(m: nn.Module) -> dict[str, Any]:
    if isinstance(m, Residual):
        main = [*_layers(m.conv1, m.bn1), "ReLU", *_layers(m.conv2, m.bn2)]
        shortcut = _layers(m.conv3) or ["identity"]
    else:  # torchvision's BasicBlock and Bottleneck
        convs = [(getattr(m, f"conv{i}", None), getattr(m, f"bn{i}", None)) for i in (1, 2, 3)]
        main = []
        for conv, bn in convs:
            if conv is not None:
                main += [*_layers(conv, bn), "ReLU"]
        main = main[:-1]  # the last ReLU comes after the addition
        shortcut = _flat(m.downsample) if m.downsample is not None else ["identity"]
    return _branching("residual", "residual block", [main, shortcut], ADD)


def _dense(m: nn.Module) -> dict[str, Any]:
    layers = list(m.net) if isinstance(m, DenseBlock) else [x for x in m.children() if isinstance(x, _DenseLayer)]
    steps = [", ".join(_flat(layer)) for layer in layers]
    return _branching("dense", f"dense block of {len(steps)}", [steps], CONCATENATE + ", after every step")


def _is_nin_block(m: nn.Module) -> bool:
    convs = [c for c in m.children() if isinstance(c, nn.Conv2d)]
    return (
        isinstance(m, nn.Sequential)
        and len(convs) == 3
        and all(_pair(c.kernel_size) == (1, 1) for c in convs[1:])
        and all(isinstance(c, nn.Conv2d | nn.ReLU) for c in m.children())
    )


def block_graph(module: nn.Module) -> dict[str, Any]:
    """``module`` as ``{"kind", "label", "paths", "join", "blocks", "why"}``: ``paths`` holds the layers of each path
    (top to bottom) of a branching block and ``join`` how the paths meet; ``blocks`` the parts of a sequence;
    ``why`` what the book says the block is for (:data:`BOOK_SAYS`), where it says."""
    if isinstance(module, Inception):
        return _inception(module)
    if isinstance(module, Residual | BasicBlock | Bottleneck):
        return _residual(module)
    if isinstance(module, DenseBlock | _DenseBlock):
        return _dense(module)
    if _is_nin_block(module):
        return _branching("nin", "NiN block", [_flat(module)], "")
    children = list(module.children())
    if not children:
        label = layer_label(module)
        return {"kind": "layer", "label": label, "paths": [], "join": "", "blocks": [], "why": BOOK_SAYS.get(label, "")}
    return {"kind": "sequence", "label": type(module).__name__, "paths": [], "join": "", "why": "",
            "blocks": [block_graph(child) for child in children]}  # fmt: skip
