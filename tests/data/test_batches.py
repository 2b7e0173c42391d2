"""The device-resident batch iterator: coverage, seeded order, sharding, normalise/resize/augment."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnzoo.data import Augment, DeviceBatches, channel_stats


def _indexed(n: int, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose labels are their own index, so batches reveal which samples they hold."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, size, size), generator=g, dtype=torch.uint8)
    return images, torch.arange(n)


def _labels_seen(batches: DeviceBatches) -> list[int]:
    return [i for _, y in batches for i in y.tolist()]


@pytest.mark.parametrize(("n", "bs"), [(100, 32), (64, 64), (7, 10)])
def test_every_index_exactly_once_per_epoch(n, bs):
    images, labels = _indexed(n)
    batches = DeviceBatches(images, labels, batch_size=bs, seed=3)
    for epoch in range(3):
        batches.set_epoch(epoch)
        seen = _labels_seen(batches)
        assert sorted(seen) == list(range(n))
        assert len(batches) == -(-n // bs)


def test_drop_last_drops_only_the_ragged_tail():
    images, labels = _indexed(100)
    batches = DeviceBatches(images, labels, batch_size=32, drop_last=True)
    sizes = [x.shape[0] for x, _ in batches]
    assert sizes == [32, 32, 32] and len(batches) == 3


def test_seeded_order_is_reproducible_and_changes_per_epoch():
    images, labels = _indexed(50)
    a = DeviceBatches(images, labels, batch_size=16, seed=11)
    b = DeviceBatches(images, labels, batch_size=16, seed=11)
    c = DeviceBatches(images, labels, batch_size=16, seed=12)
    assert _labels_seen(a) == _labels_seen(b)
    assert _labels_seen(a) != _labels_seen(c)
    first = _labels_seen(a)
    a.set_epoch(1)
    assert _labels_seen(a) != first
    a.set_epoch(0)
    assert _labels_seen(a) == first  # an epoch's order depends on (seed, epoch) only: resumable


def test_no_shuffle_keeps_file_order():
    images, labels = _indexed(10)
    assert _labels_seen(DeviceBatches(images, labels, batch_size=3, shuffle=False)) == list(range(10))


def test_augmentation_does_not_change_the_order():
    images, labels = _indexed(40)
    plain = DeviceBatches(images, labels, batch_size=8, seed=5)
    aug = DeviceBatches(images, labels, batch_size=8, seed=5, augment=Augment(hflip=True, crop_padding=2))
    assert _labels_seen(plain) == _labels_seen(aug)


@pytest.mark.parametrize("n", [100, 101, 103])
@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_shards_partition_the_epoch(n, world_size):
    images, labels = _indexed(n)
    shards = [
        DeviceBatches(images, labels, batch_size=8, seed=1, rank=r, world_size=world_size) for r in range(world_size)
    ]
    seen = [_labels_seen(s) for s in shards]
    assert len({len(s) for s in seen}) == 1  # equal work per rank
    assert all(len(s) == shards[0].num_samples for s in seen)
    union = [i for s in seen for i in s]
    assert set(union) == set(range(n))
    assert len(union) - n == (-n) % world_size  # only the wrap-around padding repeats


def test_shards_interleave_the_global_order():
    images, labels = _indexed(64)
    whole = DeviceBatches(images, labels, batch_size=64, seed=9)
    ranks = [DeviceBatches(images, labels, batch_size=32, seed=9, rank=r, world_size=2) for r in (0, 1)]
    (_, y_all), (_, y0), (_, y1) = next(iter(whole)), next(iter(ranks[0])), next(iter(ranks[1]))
    # Rank r of a global batch of 2b holds the samples a single process would put in that batch.
    assert sorted(torch.cat([y0, y1]).tolist()) == sorted(y_all.tolist())


def test_scaling_and_normalisation():
    images, labels = _indexed(20)
    x, _ = next(iter(DeviceBatches(images, labels, batch_size=20, shuffle=False)))
    assert x.dtype == torch.float32 and x.shape == (20, 1, 8, 8)
    torch.testing.assert_close(x[:, 0], images.float() / 255)
    mean, std = 0.3, 0.2
    x, _ = next(iter(DeviceBatches(images, labels, batch_size=20, shuffle=False, mean=mean, std=std)))
    torch.testing.assert_close(x[:, 0], (images.float() / 255 - mean) / std)


def test_channels_last_layout_and_opt_out():
    images = torch.randint(0, 256, (4, 3, 6, 6), dtype=torch.uint8)
    x, _ = next(iter(DeviceBatches(images, torch.zeros(4, dtype=torch.long), batch_size=4)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(iter(DeviceBatches(images, torch.zeros(4, dtype=torch.long), batch_size=4, channels_last=False)))
    assert x.is_contiguous()


@pytest.mark.parametrize("size", [96, 224, 14])
def test_resize_is_bilinear_on_the_device(size):
    images, labels = _indexed(6, size=28)
    batches = DeviceBatches(images, labels, batch_size=6, shuffle=False, resize=size)
    x, _ = next(iter(batches))
    assert x.shape == (6, 1, size, size) and batches.output_shape == (1, size, size)
    expected = F.interpolate(images.float().unsqueeze(1) / 255, size=(size, size), mode="bilinear", antialias=size < 28)
    torch.testing.assert_close(x, expected)


def test_resize_matches_torchvision_resize_of_the_book():
    """The book's code resizes PIL images with transforms.Resize; on tensors that is antialiased bilinear."""
    tv = pytest.importorskip("torchvision.transforms.v2.functional")
    images, labels = _indexed(3, size=28)
    x, _ = next(iter(DeviceBatches(images, labels, batch_size=3, shuffle=False, resize=96)))
    ref = tv.resize(images.unsqueeze(1).float() / 255, [96, 96], antialias=True)
    torch.testing.assert_close(x, ref, atol=1e-5, rtol=0)


def test_hflip_mirrors_about_half_the_images():
    images, labels = _indexed(400)
    x, y = next(iter(DeviceBatches(images, labels, batch_size=400, augment=Augment(hflip=True))))
    original = images[y].float().unsqueeze(1) / 255
    flipped = torch.isclose(x, original.flip(3)).flatten(1).all(1)
    same = torch.isclose(x, original).flatten(1).all(1)
    assert bool((flipped | same).all())
    assert 150 < int(flipped.sum()) < 250


def _mirrored(batches: DeviceBatches, images: torch.Tensor) -> dict[int, bool]:
    """Image index -> whether this epoch showed it mirrored."""
    out = {}
    for x, y in batches:
        original = images[y].float().unsqueeze(1) / 255
        out.update(zip(y.tolist(), torch.isclose(x, original.flip(3)).flatten(1).all(1).tolist(), strict=True))
    return out


def test_alternating_flip_shows_each_image_mirrored_in_every_other_epoch():
    images, labels = _indexed(400)
    batches = DeviceBatches(images, labels, batch_size=64, seed=3, augment=Augment(hflip=True, alternate=True))
    seen = []
    for epoch in range(4):
        batches.set_epoch(epoch)
        seen.append(_mirrored(batches, images))
    assert 150 < sum(seen[0].values()) < 250  # a random half
    assert all(seen[0][i] != seen[1][i] for i in range(400))  # the other half the next epoch
    assert seen[2] == seen[0] and seen[3] == seen[1]
    # the half is fixed by the seed, and the order still changes per epoch
    again = DeviceBatches(images, labels, batch_size=64, seed=3, augment=Augment(hflip=True, alternate=True))
    assert _mirrored(again, images) == seen[0]
    other = DeviceBatches(images, labels, batch_size=64, seed=4, augment=Augment(hflip=True, alternate=True))
    assert _mirrored(other, images) != seen[0]


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    pad = 2
    images, labels = _indexed(60, size=6)
    batches = DeviceBatches(images, labels, batch_size=60, seed=4, augment=Augment(crop_padding=pad))
    x, y = next(iter(batches))
    padded = F.pad(images[y].float().unsqueeze(1) / 255, (pad,) * 4)
    offsets = set()
    for i in range(60):
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.allclose(x[i], padded[i, :, dy : dy + 6, dx : dx + 6], atol=1e-6)
        ]
        assert matches, f"sample {i} is not a window of its padded image"
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets really vary


def test_channel_stats_match_a_direct_computation():
    images = torch.randint(0, 256, (50, 3, 5, 5), dtype=torch.uint8)
    mean, std = channel_stats(images, chunk=7)
    ref = images.double() / 255
    torch.testing.assert_close(torch.tensor(mean, dtype=torch.float64), ref.mean(dim=(0, 2, 3)), atol=1e-9, rtol=0)
    ref_std = ref.std(dim=(0, 2, 3), unbiased=False)
    torch.testing.assert_close(torch.tensor(std, dtype=torch.float64), ref_std, atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 4, "rank": 2, "world_size": 2}, "rank"),
        ({"batch_size": 4, "mean": 0.5}, "both mean and std"),
        ({"batch_size": 4, "mean": 0.5, "std": 0.0}, "std must be positive"),
    ],
)
def test_bad_arguments(kwargs, error):
    images, labels = _indexed(8)
    with pytest.raises(ValueError, match=error):
        DeviceBatches(images, labels, **kwargs)


def test_rejects_float_images():
    with pytest.raises(TypeError, match="uint8"):
        DeviceBatches(torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.long), batch_size=1)
