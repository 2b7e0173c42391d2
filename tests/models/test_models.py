"""The model zoo: every registered model against its contract, and the book's networks against the book's code.

The book's networks are rebuilt below from the book's code (d2l's "Modern CNNs" chapter), copied with
only the fixed 1 input channel / 10 classes kept. cnnzoo's version of each must have the same parameter
count, the same output shape after every top-level stage, and — with the book network's weights copied
in — the same outputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import cnnzoo
from cnnzoo.base.errors import InputTooSmallError, ModelError, UnknownModelError
from cnnzoo.models.batchnorm import BatchNorm2d
from cnnzoo.models.inspection import shape_trace
from cnnzoo.models.references import BOOK_TRACES
from cnnzoo.models.registry import get_model_info, register_model

# Parameter counts with the default arguments (1 input channel, 10 classes). The book's networks' counts
# equal those of the book's definitions (checked against the copies below); by hand: LeNet = 156 + 2,416 +
# 48,120 + 10,164 + 850. The deep ResNets / DenseNet-121 are torchvision's counts (25,557,032 for
# ResNet-50) less the 3->1 channel stem and the 1000->10 class head.
PINNED_PARAMS = {
    "lenet": 61_706,
    "lenet_bn": 44_878,
    "lenet_bn_scratch": 44_878,
    "alexnet": 46_764_746,
    "vgg11": 128_806_154,
    "vgg11_small": 43_093_322,
    "nin": 1_992_166,
    "googlenet": 5_977_530,
    "resnet18": 11_178_378,
    "resnet34": 21_283_530,
    "resnet50": 23_522_250,
    "resnet101": 42_514_378,
    "resnet152": 58_158_026,
    "densenet": 758_226,
    "densenet121": 6_957_834,
    # cnnzoo's own design, not the book's (src/cnnzoo/models/speednet.py): bias-free 3x3 convs + BN, by hand
    # 288 + 18,432 + 36,864 + 73,728 conv weights, 2 x (32 + 64 + 64 + 128) BN, 1,290 linear
    "speednet": 131_178,
    "speednet_wide": 293_530,
}

# Models too slow on CPU for a backward pass at their default size and batch 2: the gradient test uses
# this side (any side from the minimum up reaches every parameter) or, for VGG-11 (fixed input size, no
# batch norm), one image.
GRAD_SIDE = {"resnet34": 32, "resnet50": 32, "resnet101": 32, "resnet152": 32, "densenet121": 32}
GRAD_BATCH = {"vgg11": 1}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small ops on a shared 2-core machine


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return cnnzoo.create_model(name, **kwargs)


# ------------------------------------------------------------------------------------------------
# The book's definitions (d2l's code), copied
# ------------------------------------------------------------------------------------------------
def d2l_lenet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10))  # fmt: skip


def d2l_lenet_bn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(256, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
        nn.Linear(84, 10))  # fmt: skip


def d2l_alexnet() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(6400, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(p=0.5),
        nn.Linear(4096, 10))  # fmt: skip


def d2l_vgg(ratio: int = 1) -> nn.Sequential:
    def vgg_block(num_convs, in_channels, out_channels):
        layers = []
        for _ in range(num_convs):
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
            layers.append(nn.ReLU())
            in_channels = out_channels
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        return nn.Sequential(*layers)

    conv_arch = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
    conv_arch = [(pair[0], pair[1] // ratio) for pair in conv_arch]
    conv_blocks = []
    in_channels = 1
    for num_convs, out_channels in conv_arch:
        conv_blocks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *conv_blocks, nn.Flatten(),
        nn.Linear(out_channels * 7 * 7, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 10))  # fmt: skip


def d2l_nin() -> nn.Sequential:
    def nin_block(in_channels, out_channels, kernel_size, strides, padding):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())  # fmt: skip

    return nn.Sequential(
        nin_block(1, 96, kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(96, 256, kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(256, 384, kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(0.5),
        nin_block(384, 10, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )


class D2LInception(nn.Module):
    def __init__(self, in_channel, c1, c2, c3, c4):
        super().__init__()
        self.p1_1 = nn.Conv2d(in_channel, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channel, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channel, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channel, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


def d2l_googlenet() -> nn.Sequential:
    Inception = D2LInception
    stage1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    stage2 = nn.Sequential(
        nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
        nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    stage3 = nn.Sequential(
        Inception(192, 64, (96, 128), (16, 32), 32),
        Inception(256, 128, (128, 192), (32, 96), 64),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    stage4 = nn.Sequential(
        Inception(480, 192, (96, 208), (16, 48), 64),
        Inception(512, 160, (112, 224), (24, 64), 64),
        Inception(512, 128, (128, 256), (24, 64), 64),
        Inception(512, 112, (144, 288), (32, 64), 64),
        Inception(528, 256, (160, 320), (32, 128), 128),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    stage5 = nn.Sequential(
        Inception(832, 256, (160, 320), (32, 128), 128),
        Inception(832, 384, (192, 384), (48, 128), 128),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
    )
    return nn.Sequential(stage1, stage2, stage3, stage4, stage5, nn.Linear(1024, 10))


class D2LResidual(nn.Module):
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def d2l_resnet18() -> nn.Sequential:
    def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(D2LResidual(input_channels, num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(D2LResidual(num_channels, num_channels))
        return blk

    b1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    return nn.Sequential(b1, b2, b3, b4, b5, nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))


def d2l_densenet() -> nn.Sequential:
    def conv_block(input_channels, num_channels):
        return nn.Sequential(
            nn.BatchNorm2d(input_channels), nn.ReLU(),
            nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))  # fmt: skip

    class DenseBlock(nn.Module):
        def __init__(self, num_conv, input_channels, num_channels):
            super().__init__()
            layer = []
            for i in range(num_conv):
                layer.append(conv_block(num_channels * i + input_channels, num_channels))
            self.net = nn.Sequential(*layer)

        def forward(self, X):
            for blk in self.net:
                Y = blk(X)
                X = torch.cat((X, Y), dim=1)
            return X

    def transition_block(input_channels, num_channels):
        return nn.Sequential(
            nn.BatchNorm2d(input_channels), nn.ReLU(),
            nn.Conv2d(input_channels, num_channels, kernel_size=1),
            nn.AvgPool2d(kernel_size=2, stride=2))  # fmt: skip

    b1 = nn.Sequential(
        nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
        nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1))  # fmt: skip
    num_channels, growth_rate = 64, 32
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, num_channels // 2))
            num_channels = num_channels // 2
    return nn.Sequential(
        b1, *blks,
        nn.BatchNorm2d(num_channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(num_channels, 10))  # fmt: skip


# name -> (the book's builder, the input side the book prints/trains it at)
D2L_NETS = {
    "lenet": (d2l_lenet, 28),
    "lenet_bn": (d2l_lenet_bn, 28),
    "lenet_bn_scratch": (d2l_lenet_bn, 28),
    "alexnet": (d2l_alexnet, 224),
    "vgg11": (d2l_vgg, 224),
    "vgg11_small": (lambda: d2l_vgg(ratio=4), 224),
    "nin": (d2l_nin, 224),
    "googlenet": (d2l_googlenet, 96),
    "resnet18": (d2l_resnet18, 224),
    "densenet": (d2l_densenet, 96),
}
# The book's definitions are checked for function (weights copied in, outputs compared) where that is
# cheap; VGG-11's 129M parameters only for count and shapes (vgg11_small covers the same code).
FUNCTION_PARITY = [name for name in D2L_NETS if name != "vgg11"]


def d2l_trace(net: nn.Sequential, side: int) -> str:
    """The book's own loop: ``for layer in net: X = layer(X); print(layer.__class__.__name__, ...)``."""
    lines, x = [], torch.rand(size=(1, 1, side, side), device="meta")
    net.eval()  # batch of one: BatchNorm1d needs eval mode, as cnnzoo's trace uses
    for layer in net:
        x = layer(x)
        lines.append(f"{layer.__class__.__name__} output shape:\t {x.shape}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Parity with the book
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(D2L_NETS))
def test_d2l_parity_params_and_stage_shapes(name):
    build_d2l, side = D2L_NETS[name]
    with torch.device("meta"):
        d2l_net = build_d2l()
    ours = on_meta(name)
    assert n_params(ours) == n_params(d2l_net) == PINNED_PARAMS[name]
    assert shape_trace(ours, side) == d2l_trace(d2l_net, side)


@pytest.mark.parametrize("name", sorted(BOOK_TRACES))
def test_shape_trace_matches_the_books_printed_output(name):
    side, printed = BOOK_TRACES[name]
    assert tuple(shape_trace(on_meta(name), side).splitlines()) == printed


@pytest.mark.parametrize("name", FUNCTION_PARITY)
def test_d2l_weights_give_d2l_outputs(name):
    """Copy the book network's parameters and buffers, in order, into ours: same outputs."""
    build_d2l, side = D2L_NETS[name]
    torch.manual_seed(0)
    d2l_net, ours = build_d2l(), cnnzoo.create_model(name)
    d2l_state, our_state = d2l_net.state_dict(), ours.state_dict()
    assert [v.shape for v in d2l_state.values()] == [v.shape for v in our_state.values()]
    ours.load_state_dict(dict(zip(our_state, d2l_state.values())))
    x = torch.rand(2, 1, side, side)
    d2l_net.train(), ours.train()  # batch statistics and running-stat updates must agree too
    torch.manual_seed(1)
    y_d2l = d2l_net(x)
    torch.manual_seed(1)  # the same dropout masks
    y_ours = ours(x)
    torch.testing.assert_close(y_ours, y_d2l)
    d2l_net.eval(), ours.eval()
    torch.testing.assert_close(ours(x), d2l_net(x))


def test_googlenet_stage2_has_relus_as_in_the_book():
    stage2 = on_meta("googlenet")[1]
    assert [type(m).__name__ for m in stage2] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]


# ------------------------------------------------------------------------------------------------
# Every registered model
# ------------------------------------------------------------------------------------------------
def test_registry_lists_the_seventeen_models_all_pinned():
    assert sorted(PINNED_PARAMS) == cnnzoo.list_models()
    assert len(cnnzoo.list_models()) == 17  # fifteen from the book and torchvision, two SpeedNets


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_parameter_count_is_pinned(name):
    assert n_params(on_meta(name)) == PINNED_PARAMS[name]


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_forward_at_default_size(name):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name).eval()
    side = get_model_info(name).default_input_size
    assert model.default_input_size == side
    with torch.no_grad():
        y = model(torch.rand(2, 1, side, side))
    assert y.shape == (2, 10)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_every_parameter_receives_a_gradient(name):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name).train()
    side, batch = GRAD_SIDE.get(name, model.default_input_size), GRAD_BATCH.get(name, 2)
    y = model(torch.rand(batch, 1, side, side))
    F.cross_entropy(y, torch.arange(batch)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_num_classes_and_in_channels_are_honoured(name):
    model = on_meta(name, num_classes=7, in_channels=3)
    assert model.model_kwargs == {"num_classes": 7, "in_channels": 3}
    side = model.default_input_size
    assert model(torch.empty(2, 3, side, side, device="meta")).shape == (2, 7)
    with pytest.raises(RuntimeError):  # the first layer really takes 3 channels
        model(torch.empty(2, 1, side, side, device="meta"))


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_min_input_size_is_the_true_minimum(name):
    """The declared minimum runs; one pixel less is refused by the registry before any layer runs."""
    model = on_meta(name).eval()
    lo = model.min_input_size
    assert model(torch.empty(1, 1, lo, lo, device="meta")).shape == (1, 10)
    with pytest.raises(InputTooSmallError, match=f"at least {lo}x{lo}"):
        model(torch.empty(1, 1, lo - 1, lo - 1, device="meta"))
    # ... and the builder itself (no registry check) really fails there: the minimum is not too cautious.
    if lo > 1:
        with torch.device("meta"):
            raw = get_model_info(name).builder(num_classes=10, in_channels=1).eval()
        with pytest.raises(RuntimeError):
            raw(torch.empty(1, 1, lo - 1, lo - 1, device="meta"))


@pytest.mark.parametrize("name", [n for n in cnnzoo.list_models() if get_model_info(n).max_input_size])
def test_fixed_size_classifiers_refuse_larger_inputs(name):
    model = on_meta(name).eval()
    hi = model.max_input_size
    assert model(torch.empty(1, 1, hi, hi, device="meta")).shape == (1, 10)
    with pytest.raises(ModelError, match=f"to {hi}x{hi}"):
        model(torch.empty(1, 1, hi + 1, hi + 1, device="meta"))
    with torch.device("meta"):
        raw = get_model_info(name).builder(num_classes=10, in_channels=1).eval()
    with pytest.raises(RuntimeError):
        raw(torch.empty(1, 1, hi + 1, hi + 1, device="meta"))


def test_alexnet_at_28_names_its_minimum():
    model = on_meta("alexnet")
    with pytest.raises(InputTooSmallError, match=r"alexnet needs inputs of at least 193x193.*resize to 224"):
        model(torch.empty(1, 1, 28, 28, device="meta"))


SMALL_INPUT = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet", "densenet121"]


@pytest.mark.parametrize("name", SMALL_INPUT)
def test_small_input_trains_at_28_without_resizing(name):
    torch.manual_seed(0)
    model = cnnzoo.create_model(name, small_input=True).train()
    assert model.default_input_size == 28
    assert model.model_kwargs["small_input"] is True
    y = model(torch.rand(2, 1, 28, 28))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    lo = model.min_input_size
    model.eval()
    with torch.device("meta"):
        assert model.to("meta")(torch.empty(1, 1, lo, lo)).shape == (1, 10)
        with pytest.raises(InputTooSmallError):
            model(torch.empty(1, 1, lo - 1, lo - 1))


def test_norm_layer_argument_reaches_every_block():
    for name in ("resnet18", "resnet50", "densenet", "densenet121"):
        model = on_meta(name, norm_layer=BatchNorm2d)
        assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        assert sum(isinstance(m, BatchNorm2d) for m in model.modules()) > 10


def test_unknown_name_names_close_matches():
    with pytest.raises(UnknownModelError, match="resnet18") as info:
        cnnzoo.create_model("resnet19")
    assert isinstance(info.value, ValueError)


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="already registered"):

        @register_model("lenet", input_size=28, min_input_size=28)
        def lenet(*, num_classes=10, in_channels=1):  # pragma: no cover - never built
            return nn.Identity()
