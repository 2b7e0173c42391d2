"""The device-resident batch iterator: cnnzoo's main speed advantage over the book's input pipeline.

The book's code feeds every network through ``torchvision.datasets.FashionMNIST`` + a per-sample PIL
``Resize``/``ToTensor`` in a ``DataLoader``: Python work per image, worker processes, and a host to
device copy per batch. Fashion-MNIST is 47 MB as uint8, so here the whole split lives on the training
device as one uint8 tensor and a batch is an index slice. Conversion to float, normalisation, resizing
(bilinear, antialiased when shrinking, as PIL does) and augmentation (random crop with zero padding,
horizontal flip) are whole-batch tensor operations on that device. There are no workers and no
per-sample Python.

Order and augmentation are drawn once per epoch from a CPU generator seeded with ``(seed, epoch)``, so
an epoch's batches are the same on every device and after a resume. With ``world_size > 1`` every rank
draws the same permutation and takes the slice ``rank::world_size`` (padded by wrapping, as
``DistributedSampler`` does, unless ``drop_last``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Augment", "DeviceBatches", "ModelView", "channel_stats", "epoch_generator"]


@dataclass(frozen=True)
class Augment:
    """Batch-level augmentation done on the device.

    ``crop_padding``: pad each image by this many zero (black) pixels and crop back to its size at a
    random offset (0 turns it off). ``hflip``: mirror each image left-right with probability 1/2.
    ``alternate`` (with ``hflip``): airbench's alternating flip; a fixed random half of the images is
    mirrored in even epochs and the other half in odd ones, so every two epochs show each image both ways
    (independent coin flips show a quarter of them one way only).
    """

    hflip: bool = False
    crop_padding: int = 0
    alternate: bool = False

    def __post_init__(self) -> None:
        if self.crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {self.crop_padding}")

    @property
    def active(self) -> bool:
        return self.hflip or self.crop_padding > 0


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream depends only on ``(seed, epoch)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF]).generate_state(2)
    g = torch.Generator(device="cpu")
    g.manual_seed(int(state[0]) << 32 | int(state[1]))
    return g


def channel_stats(images: Tensor, chunk: int = 8192) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images, on the [0, 1] scale.

    ``images`` is ``[N, H, W]`` or ``[N, C, H, W]``. Computed in float64 chunks so a 60,000-image
    split needs no 1.5 GB float copy.
    """
    x = images if images.dim() == 4 else images.unsqueeze(1)
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].to("cpu", torch.float64).div_(255.0)
        total += part.sum(dim=(0, 2, 3))
        total_sq += part.square().sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / n
    std = (total_sq / n - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _pair(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


@dataclass(frozen=True)
class ModelView:
    """How a model sees uint8 images: resized to ``input_size`` (bilinear), scaled to [0, 1], then normalised per
    channel with ``mean`` and ``std`` (``None``: scaled only). A run's, a checkpoint's or a weight's."""

    input_size: int
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def batches(
        self, images: Tensor, labels: Tensor, *, batch_size: int, device: torch.device | str = "cpu"
    ) -> DeviceBatches:
        """``images`` in order, unaugmented, as this view shows them to the model (as an evaluation feeds them)."""
        options = {"batch_size": batch_size, "device": device, "shuffle": False, "channels_last": False}
        return DeviceBatches(images, labels, mean=self.mean, std=self.std, resize=self.input_size, **options)


class DeviceBatches:
    """Iterate ``(images, labels)`` batches from uint8 tensors kept on ``device``.

    Yields ``x``: float ``[B, C, H', W']`` (channels_last unless disabled), scaled to [0, 1], then
    normalised with ``(x - mean) / std`` when both are given; ``y``: int64 ``[B]``. Call
    :meth:`set_epoch` before each epoch to change the order (as with ``DistributedSampler``).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        device: torch.device | str = "cpu",
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        mean: Sequence[float] | float | None = None,
        std: Sequence[float] | float | None = None,
        resize: int | Sequence[int] | None = None,
        channels_last: bool = True,
        augment: Augment | None = None,
        rank: int = 0,
        world_size: int = 1,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4:
            raise ValueError(f"images must be [N, H, W] or [N, C, H, W], got shape {tuple(images.shape)}")
        if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")

        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.resize = _pair(resize)
        self.channels_last = channels_last
        self.augment = augment if augment is not None and augment.active else None
        self.rank = rank
        self.world_size = world_size
        self.dtype = dtype
        self.epoch = 0

        c = self.images.shape[1]
        # Fold /255 and (x - mean) / std into one multiply-add: x * scale + shift.
        if mean is None:
            scale = torch.full((c,), 1.0 / 255.0)
            shift = torch.zeros(c)
        else:
            m = torch.as_tensor(mean, dtype=torch.float64).flatten().expand(c)
            s = torch.as_tensor(std, dtype=torch.float64).flatten().expand(c)
            if bool((s <= 0).any()):
                raise ValueError(f"std must be positive, got {s.tolist()}")
            scale = 1.0 / (255.0 * s)
            shift = -m / s
        self._scale = scale.to(self.device, dtype).view(1, c, 1, 1)
        self._shift = shift.to(self.device, dtype).view(1, c, 1, 1)

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        n = self.images.shape[0]
        if self.world_size == 1:
            return n
        if self.drop_last:
            return n // self.world_size
        return math.ceil(n / self.world_size)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the batches this iterator yields."""
        c, h, w = self.images.shape[1:]
        return (c, *(self.resize or (h, w)))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration uses."""
        self.epoch = int(epoch)

    # -- per-epoch plan ----------------------------------------------------------------------
    def epoch_indices(self) -> Tensor:
        """This rank's sample indices for the current epoch, in order (on the CPU)."""
        n = self.images.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch))
        else:
            order = torch.arange(n)
        if self.world_size > 1:
            if self.drop_last:
                order = order[: n - n % self.world_size]
            else:
                total = math.ceil(n / self.world_size) * self.world_size
                if total > n:
                    order = torch.cat([order, order[: total - n]])
            order = order[self.rank :: self.world_size]
        return order

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.epoch_indices()
        n = order.shape[0]
        flips = offsets = None
        if self.augment is not None:
            # A second stream so that turning augmentation on does not change the order.
            g = epoch_generator(self.seed + 0x5EED, self.epoch)
            if self.augment.hflip and self.augment.alternate:
                halves = torch.rand(self.images.shape[0], generator=epoch_generator(self.seed + 0xF11B, 0)) < 0.5
                flips = (halves[order] ^ bool(self.epoch % 2)).to(self.device, non_blocking=True)
            elif self.augment.hflip:
                flips = (torch.rand(n, generator=g) < 0.5).to(self.device, non_blocking=True)
            p = self.augment.crop_padding
            if p > 0:
                offsets = torch.randint(0, 2 * p + 1, (n, 2), generator=g).to(self.device, non_blocking=True)
        order = order.to(self.device, non_blocking=True)

        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.images[idx].to(self.dtype)
            if offsets is not None:
                x = _random_crop(x, offsets[start : start + self.batch_size], self.augment.crop_padding)
            if flips is not None:
                x = torch.where(flips[start : start + self.batch_size].view(-1, 1, 1, 1), x.flip(3), x)
            yield self._finish(x), self.labels[idx]

    def first_images(self, n: int) -> Tensor:
        """The first ``n`` stored images as the batches carry them (resized, scaled, normalised), in stored
        order and without augmentation: what a layer fitted to data sees (cnnzoo.models.whitening)."""
        return self._finish(self.images[:n].to(self.dtype))

    def _finish(self, x: Tensor) -> Tensor:
        h, w = self.images.shape[2:]
        if self.resize is not None and self.resize != (h, w):
            shrink = self.resize[0] < h or self.resize[1] < w
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False, antialias=shrink)
        x = torch.addcmul(self._shift, x, self._scale)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _random_crop(x: Tensor, offsets: Tensor, pad: int) -> Tensor:
    """Crop each image of ``x`` from its zero-padded copy at ``offsets[i] = (dy, dx)`` in ``[0, 2*pad]``."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # [B, H]
    cols = offsets[:, 1:2] + torch.arange(w, device=x.device)  # [B, W]
    batch = torch.arange(b, device=x.device).view(b, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.view(b, h, 1), cols.view(b, 1, w)]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)
