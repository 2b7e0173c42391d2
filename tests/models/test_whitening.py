"""Patch whitening (airbench's first layer) and speednet(whiten=True)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnzoo import create_model
from cnnzoo.models.whitening import FIT_IMAGES, FIT_VALUES, PatchWhitening, fit_whitening, images_to_fit


def correlated_images(n=400, channels=1, side=12, seed=0):
    """Smooth images: neighbouring pixels correlate strongly, as in photographs, so whitening has work to do."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, side + 3, side + 3, generator=g)
    x = F.avg_pool2d(x, 4, stride=1)  # side x side, each pixel an average of 16 neighbours
    return x * 3 + 1


def output_covariance(layer, images):
    """The covariance, over every position and image, of the first half of the layer's channels (bias 0)."""
    y = F.conv2d(images.double(), layer.weight.double())[:, : layer.out_channels // 2]
    flat = y.permute(0, 2, 3, 1).reshape(-1, layer.out_channels // 2)
    return flat.T @ flat / flat.shape[0]


@pytest.mark.parametrize("channels", [1, 3])
def test_fitted_filters_whiten_the_patches_and_come_with_their_negatives(channels):
    images = correlated_images(channels=channels)
    layer = PatchWhitening(channels, eps=1e-9)
    assert layer.out_channels == 8 * channels
    before = output_covariance(layer, images)
    assert (before - torch.eye(4 * channels, dtype=torch.float64)).abs().max() > 1  # the raw patches: not white
    layer.fit(images)
    after = output_covariance(layer, images)
    assert torch.allclose(after, torch.eye(4 * channels, dtype=torch.float64), atol=1e-4)
    half = layer.out_channels // 2
    assert torch.equal(layer.weight[half:], -layer.weight[:half])
    assert layer.weight.requires_grad is False and list(layer.parameters()) == []  # nothing trains


def test_whitening_is_a_2x2_convolution_one_pixel_smaller():
    layer = PatchWhitening(1)
    layer.fit(correlated_images())
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(layer(x), F.conv2d(x, layer.weight))
    assert layer(x).shape == (2, 8, 27, 27)


def test_the_fit_reads_a_bounded_number_of_images():
    assert images_to_fit((1, 28, 28)) == FIT_IMAGES
    big = images_to_fit((3, 224, 224))
    assert big * 3 * 4 * 223 * 223 <= FIT_VALUES and big < 100
    assert images_to_fit((64, 4096, 4096)) == 1
    asked = []
    model = create_model("speednet", whiten=True)

    def first_images(n):
        asked.append(n)
        return correlated_images(n=5, side=28)

    assert fit_whitening(model, first_images, (1, 28, 28)) is True
    assert asked == [FIT_IMAGES]
    assert fit_whitening(create_model("speednet"), first_images, (1, 28, 28)) is False
    assert asked == [FIT_IMAGES]  # a network without the layer reads no images


def test_speednet_with_whitening_fits_saves_and_reloads_its_filters():
    model = create_model("speednet", whiten=True)
    assert model.min_input_size == 8 and model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    # a stem reading 8 channels instead of 1: 7 x 9 x 32 more weights; the whitening has none that train
    assert sum(p.numel() for p in model.parameters()) == 131_178 + 7 * 9 * 32
    fit_whitening(model, lambda n: correlated_images(n=50, side=28), (1, 28, 28))
    again = create_model("speednet", whiten=True)
    assert not torch.equal(again.features[0].weight, model.features[0].weight)
    assert model.features[0].fitted and not again.features[0].fitted
    again.load_state_dict(model.state_dict())
    assert torch.equal(again.features[0].weight, model.features[0].weight) and again.features[0].fitted
    # a network fitted already (weights loaded, fine-tuning) keeps its filters
    assert fit_whitening(again, lambda n: correlated_images(n=50, side=28, seed=1), (1, 28, 28)) is False
    assert torch.equal(again.features[0].weight, model.features[0].weight)


def test_only_a_first_layer_can_be_fitted():
    two = torch.nn.Sequential(PatchWhitening(1), PatchWhitening(8))
    with pytest.raises(ValueError, match="2 whitening layers"):
        fit_whitening(two, lambda n: correlated_images(n=4), (1, 12, 12))
    with pytest.raises(ValueError, match=r"need \[N, 3, H>=2, W>=2\]"):
        PatchWhitening(3).fit(correlated_images(channels=1))
