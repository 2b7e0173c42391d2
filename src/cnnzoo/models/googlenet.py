"""GoogLeNet / Inception v1 (D2L 7.4).

Szegedy et al., "Going Deeper with Convolutions" (2014).

An :class:`Inception` block runs four paths side by side — 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3
max-pool then 1x1 — and concatenates them on the channel axis; every path keeps H and W. The network
has five stages: a 7x7 stride-2 stem, a 1x1 + 3x3 pair, then 2, 5 and 2 Inception blocks; stages 1-4
end with a 3x3 stride-2 max-pool, stage 5 with global average pooling. At 96x96 the stages output
64x24x24, 192x12x12, 480x6x6, 832x3x3 and 1024.

Differences from the book, and why:

* The book's code is followed where copies of it differ: stage 2 has a ReLU after both of its
  convolutions (some copies omit them), and stage 5 ends in ``AdaptiveAvgPool2d`` + ``Flatten``.
* As in the book, no auxiliary classifiers and no local response normalization.
* ``in_channels`` and ``num_classes`` are arguments (the book fixes 1 and 10).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cnnzoo.models.registry import BookTraining, register_model

__all__ = ["Inception", "googlenet"]


class Inception(nn.Module):
    """Four parallel paths concatenated on channels: ``c1 + c2[1] + c3[1] + c4`` output channels.

    ``c2`` and ``c3`` are ``(reduce, out)`` pairs: the 1x1 reduction before the 3x3 (5x5) convolution.
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c2: tuple[int, int],
        c3: tuple[int, int],
        c4: int,
    ) -> None:
        super().__init__()
        self.out_channels = c1 + c2[1] + c3[1] + c4
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


# The Inception blocks of stages 3 to 5 with the book's numbers: (input channels, c1, c2, c3, c4).
_STAGE3 = ((192, 64, (96, 128), (16, 32), 32), (256, 128, (128, 192), (32, 96), 64))
_STAGE4 = (
    (480, 192, (96, 208), (16, 48), 64), (512, 160, (112, 224), (24, 64), 64), (512, 128, (128, 256), (24, 64), 64),
    (512, 112, (144, 288), (32, 64), 64), (528, 256, (160, 320), (32, 128), 128),
)  # fmt: skip
_STAGE5 = ((832, 256, (160, 320), (32, 128), 128), (832, 384, (192, 384), (48, 128), 128))


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


@register_model(input_size=96, min_input_size=1, book_training=BookTraining(0.1, 128, 96))
def googlenet(*, num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """GoogLeNet: five stages, nine Inception blocks, no auxiliary heads (D2L 7.4)."""
    stage1 = nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(), _pool())
    stage2 = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
        _pool(),
    )  # fmt: skip
    stage3 = nn.Sequential(*(Inception(*row) for row in _STAGE3), _pool())
    stage4 = nn.Sequential(*(Inception(*row) for row in _STAGE4), _pool())
    stage5 = nn.Sequential(*(Inception(*row) for row in _STAGE5), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return nn.Sequential(stage1, stage2, stage3, stage4, stage5, nn.Linear(1024, num_classes))
