"""The deep ResNets and DenseNet-121 are torchvision's networks: its weights load strictly and agree.

No download: torchvision's models are built with random weights (``weights=None``) and their
``state_dict`` is loaded into cnnzoo's, so every parameter and buffer is checked, not just the names.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

import cnnzoo

NAMES = ["resnet34", "resnet50", "resnet101", "resnet152", "densenet121"]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small ops on a shared 2-core machine


@pytest.mark.parametrize("name", NAMES)
def test_torchvision_weights_load_strictly_and_give_the_same_outputs(name):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    ours = cnnzoo.create_model(name, in_channels=3, num_classes=1000)
    theirs, mine = reference.state_dict(), ours.state_dict()
    assert list(mine) == list(theirs)
    assert all(mine[k].shape == theirs[k].shape for k in theirs)
    ours.load_state_dict(theirs, strict=True)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        reference.eval(), ours.eval()
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=1e-4)
        reference.train(), ours.train()  # batch statistics, and the running statistics they update
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=1e-4)
    for key, value in reference.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_initialization_follows_torchvision(name):
    """Same init scheme: the conv weights' spread matches torchvision's (kaiming normal), layer by layer."""
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None)
    ours = cnnzoo.create_model(name, in_channels=3, num_classes=1000)
    theirs = reference.state_dict()
    for key, value in ours.state_dict().items():
        if value.dim() == 4 and value.numel() > 10_000:  # conv weights big enough for a stable std
            assert value.std().item() == pytest.approx(theirs[key].std().item(), rel=0.1), key


@pytest.mark.parametrize("name", NAMES)
def test_small_input_keeps_the_layout_except_the_stem(name):
    with torch.device("meta"):
        small = cnnzoo.create_model(name, in_channels=3, num_classes=1000, small_input=True)
        reference = getattr(torchvision.models, name)(weights=None)
    theirs, mine = reference.state_dict(), small.state_dict()
    assert list(mine) == list(theirs)
    differ = [k for k in theirs if mine[k].shape != theirs[k].shape]
    assert differ == (["conv1.weight"] if name.startswith("resnet") else ["features.conv0.weight"])
    assert mine[differ[0]].shape == (64, 3, 3, 3)
