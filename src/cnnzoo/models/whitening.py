"""Patch whitening: a frozen first convolution fitted to the training images (airbench's first layer).

Keller Jordan's CIFAR-10 speed records (``KellerJordan/cifar10-airbench``) start with a 2x2 convolution whose
filters are not learned: they are the eigenvectors of the covariance of the training images' 2x2 patches, each
scaled by ``1 / sqrt(eigenvalue + eps)``, together with their negatives. Its output is the patches in a
whitened basis, every direction at unit variance, so the first learned layer starts on well-conditioned
inputs and the first epochs are not spent learning what a principal component analysis gives for free.

It is not in the book. cnnzoo uses it in ``speednet(whiten=True)``, the speed record's network
(benchmarks/speedrun/notes.md measures it: +0.3 to +0.5 points of validation accuracy on Fashion-MNIST).
What differs from airbench: the filters are a buffer, not a frozen parameter, so no optimizer ever sees them;
there is no bias (airbench trains one for the first few epochs; on Fashion-MNIST a bias that never trains did as
well, 0.9452 / 0.9470 validation accuracy against 0.9448 / 0.9424 over two seeds, and saves the backward pass
into the stem's input, about 1 s of a 6 s epoch); and the network puts a ReLU after it (airbench a GELU), which
is what makes the negated filters worth having.

The filters depend on data, so a network with this layer is complete only after :func:`fit_whitening` has
seen training images as the network will see them (normalised, resized). cnnzoo's training loop does that for
a new run, before the first step; resuming or loading weights restores the fitted filters from the state
dict, and fine-tuning (``--init-from``) keeps the trained network's filters when it had the layer. Unfitted, the
layer passes each patch's pixels through unchanged (and negated).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PatchWhitening", "fit_whitening"]

PATCH = 2
# airbench fits on 5,000 CIFAR-10 images; 10,000 Fashion-MNIST images give 7.3M patches. Bigger images or more
# channels get fewer images, so that the fit stays bounded (about 30M patch values, a few seconds) for any input.
FIT_IMAGES = 10_000
FIT_VALUES = 30_000_000
CHUNK_VALUES = 4_000_000  # patch values per float64 chunk of the covariance sum (32 MB)


class PatchWhitening(nn.Module):
    """A 2x2 convolution without bias, ``in_channels -> 2 * 4 * in_channels``, whose filters :meth:`fit` sets
    from data; nothing in it trains.

    The output is one pixel smaller than the input on each side (no padding), as in airbench.
    """

    def __init__(self, in_channels: int = 1, eps: float = 5e-4) -> None:
        super().__init__()
        dims = in_channels * PATCH * PATCH
        self.in_channels, self.out_channels, self.eps = in_channels, 2 * dims, eps
        self.register_buffer("weight", _unfitted(in_channels))

    @torch.no_grad()
    def fit(self, images: Tensor) -> None:
        """Set the filters from ``images`` ``[N, C, H, W]``: the patches' eigenvectors over sqrt(eigenvalue)."""
        if images.dim() != 4 or images.shape[1] != self.in_channels or min(images.shape[2:]) < PATCH:
            raise ValueError(f"need [N, {self.in_channels}, H>=2, W>=2] images, got {tuple(images.shape)}")
        dims = self.out_channels // 2
        covariance = torch.zeros(dims, dims, dtype=torch.float64)
        per_image = (images.shape[2] - 1) * (images.shape[3] - 1) * dims
        step = max(1, CHUNK_VALUES // per_image)
        for start in range(0, images.shape[0], step):
            x = images[start : start + step].detach().to("cpu", torch.float64)
            patches = x.unfold(2, PATCH, 1).unfold(3, PATCH, 1)  # N, C, H-1, W-1, 2, 2
            patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, dims)
            covariance += patches.T @ patches
        covariance /= images.shape[0] * per_image // dims
        values, vectors = torch.linalg.eigh(covariance)
        filters = vectors.T / torch.sqrt(values.clamp_min(0) + self.eps).unsqueeze(1)
        filters = filters.view(dims, self.in_channels, PATCH, PATCH)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight.dtype))

    @property
    def fitted(self) -> bool:
        """Whether the filters came from data (a fit, or a state dict that had one), not the constructor."""
        return not torch.equal(self.weight.cpu(), _unfitted(self.in_channels).to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=({PATCH}, {PATCH}), frozen"


def _unfitted(in_channels: int) -> Tensor:
    """The constructor's filters: each patch pixel passed through and negated."""
    dims = in_channels * PATCH * PATCH
    identity = torch.eye(dims).view(dims, in_channels, PATCH, PATCH)
    return torch.cat([identity, -identity])


def images_to_fit(shape: tuple[int, int, int]) -> int:
    """How many images of ``shape`` ``(C, H, W)`` the fit reads: :data:`FIT_IMAGES`, fewer for big images."""
    c, h, w = shape
    return max(1, min(FIT_IMAGES, FIT_VALUES // max(1, c * PATCH * PATCH * (h - 1) * (w - 1))))


@torch.no_grad()
def fit_whitening(model: nn.Module, first_images: Callable[[int], Tensor], shape: tuple[int, int, int]) -> bool:
    """Fit ``model``'s :class:`PatchWhitening` on its training images, unless it is fitted already (loaded from a
    trained network); whether it fitted one.

    ``first_images(n)`` returns the first ``n`` training images as the network sees them, each of ``shape``
    ``(C, H, W)``. Only a first layer can be fitted to images (a deeper one would need the activations before
    it), so a network with several is refused.
    """
    layers = [m for m in model.modules() if isinstance(m, PatchWhitening)]
    if len(layers) > 1:
        raise ValueError(f"{len(layers)} whitening layers: only a first layer can be fitted to images")
    if not layers or layers[0].fitted:
        return False
    layers[0].fit(first_images(images_to_fit(shape)))
    return True
