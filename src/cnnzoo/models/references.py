"""Other people's Fashion-MNIST figures, as data in one place: what the book printed, and the public benchmark's.

None of these numbers is measured by cnnzoo. The leaderboard page (:mod:`cnnzoo.leaderboard.board`) sets them beside
its own rows, labelled as references, so a reader can tell how far a network is from what its authors or
others reported, with their set-ups:

* :data:`D2L_FIGURES`: the test accuracy *Dive into Deep Learning* printed at the end of its own training
  run of each network (``train_ch6``: plain SGD, Xavier init, cross-entropy, no normalisation or
  augmentation, on a GPU), and one figure of a d2l reader's ResNet-18 variant; ``None`` where the book
  trains the network but shows only the curves.
* :data:`BOOK_TRACES`: the shape traces the book printed for the networks it traces (LeNet, VGG-11, GoogLeNet,
  ResNet-18), verbatim but for whitespace; the studio's Zoo sets each beside cnnzoo's live trace.
* :data:`PUBLIC_FIGURES` and :data:`PUBLIC_BEST`: the best entry of the public Fashion-MNIST benchmark
  table (:data:`PUBLIC_SOURCE`) for an architecture of each family, and its best entry overall.

Both are keyed by :func:`reference_key`: the registry family, except that the LeNet family holds two of the
book's networks (LeNet and LeNet with batch norm).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BOOK_TRACES",
    "D2L_FIGURES",
    "D2L_SOURCE",
    "PUBLIC_BEST",
    "PUBLIC_FIGURES",
    "PUBLIC_SOURCE",
    "READER_SOURCE",
    "BookFigure",
    "PublicFigure",
    "reference_key",
]

D2L_SOURCE = "d2l (the book's printed train_ch6 result)"

# name -> (the input side the book traces at, what its loop printed: one line a top-level child)
BOOK_TRACES: dict[str, tuple[int, tuple[str, ...]]] = {
    "lenet": (28, (  # the book's first line, its Reshape layer (Reshape output shape: [1, 1, 28, 28]), left out:
        # cnnzoo's LeNet takes [N, 1, 28, 28] directly
        "Conv2d output shape:\t torch.Size([1, 6, 28, 28])",
        "Sigmoid output shape:\t torch.Size([1, 6, 28, 28])",
        "AvgPool2d output shape:\t torch.Size([1, 6, 14, 14])",
        "Conv2d output shape:\t torch.Size([1, 16, 10, 10])",
        "Sigmoid output shape:\t torch.Size([1, 16, 10, 10])",
        "AvgPool2d output shape:\t torch.Size([1, 16, 5, 5])",
        "Flatten output shape:\t torch.Size([1, 400])",
        "Linear output shape:\t torch.Size([1, 120])",
        "Sigmoid output shape:\t torch.Size([1, 120])",
        "Linear output shape:\t torch.Size([1, 84])",
        "Sigmoid output shape:\t torch.Size([1, 84])",
        "Linear output shape:\t torch.Size([1, 10])",
    )),
    "vgg11": (224, (
        "Sequential output shape:\t torch.Size([1, 64, 112, 112])",
        "Sequential output shape:\t torch.Size([1, 128, 56, 56])",
        "Sequential output shape:\t torch.Size([1, 256, 28, 28])",
        "Sequential output shape:\t torch.Size([1, 512, 14, 14])",
        "Sequential output shape:\t torch.Size([1, 512, 7, 7])",
        "Flatten output shape:\t torch.Size([1, 25088])",
        "Linear output shape:\t torch.Size([1, 4096])",
        "ReLU output shape:\t torch.Size([1, 4096])",
        "Dropout output shape:\t torch.Size([1, 4096])",
        "Linear output shape:\t torch.Size([1, 4096])",
        "ReLU output shape:\t torch.Size([1, 4096])",
        "Dropout output shape:\t torch.Size([1, 4096])",
        "Linear output shape:\t torch.Size([1, 10])",
    )),
    "googlenet": (96, (
        "Sequential output shape:\t torch.Size([1, 64, 24, 24])",
        "Sequential output shape:\t torch.Size([1, 192, 12, 12])",
        "Sequential output shape:\t torch.Size([1, 480, 6, 6])",
        "Sequential output shape:\t torch.Size([1, 832, 3, 3])",
        "Sequential output shape:\t torch.Size([1, 1024])",
        "Linear output shape:\t torch.Size([1, 10])",
    )),
    "resnet18": (224, (
        "Sequential output shape:\t torch.Size([1, 64, 56, 56])",
        "Sequential output shape:\t torch.Size([1, 64, 56, 56])",
        "Sequential output shape:\t torch.Size([1, 128, 28, 28])",
        "Sequential output shape:\t torch.Size([1, 256, 14, 14])",
        "Sequential output shape:\t torch.Size([1, 512, 7, 7])",
        "AdaptiveAvgPool2d output shape:\t torch.Size([1, 512, 1, 1])",
        "Flatten output shape:\t torch.Size([1, 512])",
        "Linear output shape:\t torch.Size([1, 10])",
    )),
}  # fmt: skip
READER_SOURCE = "a d2l reader's ResNet-18 variant (Adam, StepLR)"


@dataclass(frozen=True)
class BookFigure:
    """A test accuracy printed for one of the book's networks (``None``: the run shows only a plot).

    ``source`` says whose run it is (:data:`D2L_SOURCE` or :data:`READER_SOURCE`); ``short`` is how the
    leaderboard's table cell names it."""

    network: str
    test_acc: float | None
    setting: str
    source: str = D2L_SOURCE
    short: str = "d2l"


# Every figure is the closing `test acc` line of the run: train_ch6 with the book's lr, epochs, batch size
# and input size; the reader's ResNet-18 variant uses its own loop.
D2L_FIGURES: dict[str, tuple[BookFigure, ...]] = {
    "lenet": (BookFigure("LeNet (sigmoid)", None, "SGD lr 0.9, 10 epochs, batch 256, 28x28"),),
    "lenet_bn": (
        BookFigure(
            "LeNet with batch norm",
            0.830,
            "SGD lr 1.0, 10 epochs, batch 256, 28x28 (one printed result for the section's two runs: hand-written "
            "BatchNorm, then nn.BatchNorm)",
        ),
    ),
    "alexnet": (BookFigure("AlexNet", None, "SGD lr 0.01, 10 epochs, batch 128, 224x224"),),
    "vgg": (BookFigure("VGG-11, a quarter of the channels", 0.911, "SGD lr 0.05, 10 epochs, batch 128, 224x224"),),
    "nin": (BookFigure("NiN", None, "SGD lr 0.1, 10 epochs, batch 128, 224x224"),),
    "googlenet": (BookFigure("GoogLeNet", 0.886, "SGD lr 0.1, 10 epochs, batch 128, 96x96"),),
    "resnet": (
        BookFigure("ResNet-18", 0.915, "SGD lr 0.05, 10 epochs, batch 256, 96x96"),
        BookFigure(
            "ResNet-18",
            0.918,
            "Adam lr 0.001, StepLR (step 2, gamma 0.9), 10 epochs, batch 256, 96x96, PyTorch's init; last epoch "
            "0.9181, also its best",
            source=READER_SOURCE,
            short="a d2l reader's variant",
        ),
    ),
    "densenet": (BookFigure("DenseNet", 0.882, "SGD lr 0.1, 10 epochs, batch 256, 96x96"),),
}


@dataclass(frozen=True)
class PublicFigure:
    """A test accuracy from the public Fashion-MNIST benchmark table: someone else's architecture and training."""

    architecture: str
    test_acc: float
    preprocessing: str


PUBLIC_SOURCE = (
    "the benchmark table of the Fashion-MNIST README (zalandoresearch/fashion-mnist, "
    "https://github.com/zalandoresearch/fashion-mnist#benchmark)"
)
_STANDARD = "mean/std normalisation, random crops and horizontal flips"
# The best entry of that table for an architecture of each family; WRN40-4 is the table's best overall.
PUBLIC_FIGURES: dict[str, PublicFigure] = {
    "alexnet": PublicFigure("AlexNet with triplet loss", 0.899, "none"),
    "vgg": PublicFigure("VGG16, 26M parameters", 0.935, "none"),
    "googlenet": PublicFigure("GoogLeNet with cross-entropy loss", 0.937, "none"),
    "resnet": PublicFigure(
        "ResNet18", 0.949, "normalisation, random horizontal and vertical flips, translation, rotation"
    ),
    "densenet": PublicFigure("DenseNet-BC, 768K parameters", 0.954, _STANDARD),
}
PUBLIC_BEST = PublicFigure("WRN40-4, 8.9M parameters", 0.967, _STANDARD)


def reference_key(name: str, family: str) -> str:
    """Which of the book's networks a registry model descends from (the LeNet family holds two of them)."""
    if name.startswith("lenet_bn"):
        return "lenet_bn"
    return family
