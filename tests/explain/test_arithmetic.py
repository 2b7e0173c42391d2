"""The convolution's arithmetic (cnnzoo.explain.arithmetic): for every registered network, each value written out
adds up to what the forward pass computed; and the terms are the model's own."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo.base.errors import ConfigError
from cnnzoo.explain.arithmetic import DETAILED_CHANNELS, explain_value, trace_units
from cnnzoo.models.registry import create_model, get_model_info, list_models


def _side(name: str) -> int:
    info = get_model_info(name)
    return max(info.min_input_size, 32) if info.max_input_size is None else info.min_input_size


def _with_running_stats(model: nn.Module) -> nn.Module:
    """BatchNorm with statistics and affine terms that are not 0 and 1, so that every term counts."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


@pytest.mark.parametrize("name", list_models())
def test_every_value_written_out_equals_the_forward_pass(name):
    torch.manual_seed(0)
    model = _with_running_stats(create_model(name))
    side = _side(name)
    x = torch.randn(1, 1, side, side)
    units = trace_units(model, x)
    assert units and units[0].kind == "conv"
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # tracing changed nothing: eval mode, no state
    for unit in units[:: max(1, len(units) // 6)]:  # 6 units of the deep ones, every unit of the small ones
        c, h, w = unit.output.shape
        for channel, y, xx in ((0, 0, 0), (c - 1, h - 1, w - 1)) if len(units) > 12 else ((c // 2, h // 2, w // 3),):
            found = explain_value(unit, channel, y, xx)
            # float32 rounding: the forward pass adds in float32, the arithmetic again in float64 (the deepest
            # torchvision ResNets, with these statistics, reach values of a few hundred after hundreds of terms)
            assert found["total"] == pytest.approx(found["value"], rel=1e-4, abs=1e-5), (unit.name, found["label"])


def test_a_convolutions_terms_are_the_models_weights_and_the_layers_input():
    model = _with_running_stats(create_model("lenet_bn"))
    x = torch.randn(1, 1, 28, 28)
    conv = trace_units(model, x)[0]
    found = explain_value(conv, 2, 5, 7)
    (only,) = found["channels"]
    assert torch.allclose(torch.tensor(only["kernel"]), model[0].weight[2, 0].detach(), atol=1e-5)
    assert torch.allclose(torch.tensor(only["window"]), x[0, 0, 5:10, 7:12], atol=1e-5)
    assert found["bias"] == pytest.approx(float(model[0].bias[2]))
    assert found["batchnorm"]["mean"] == pytest.approx(float(model[1].running_mean[2]))
    assert found["activation"]["name"] == "sigmoid" and found["label"] == "5x5 conv 1→6 + BatchNorm + sigmoid"
    assert found["z"] == pytest.approx(found["conv_output"], abs=1e-6)


def test_many_input_channels_show_the_largest_in_full_and_the_rest_as_sums():
    model = create_model("nin").eval()
    units = trace_units(model, torch.randn(1, 1, 96, 96))
    one_by_one = next(u for u in units if u.kind == "conv" and u.module.kernel_size == (1, 1))
    found = explain_value(one_by_one, 3, 4, 6)
    assert len(found["channels"]) == DETAILED_CHANNELS and found["others"]["count"] == 96 - DETAILED_CHANNELS
    shown = sorted(abs(c["sum"]) for c in found["channels"])
    assert shown[0] >= sorted(map(abs, found["partial_sums"]))[-DETAILED_CHANNELS]  # the largest contributions
    assert sum(c["sum"] for c in found["channels"]) + found["others"]["sum"] == pytest.approx(found["products_sum"])


def test_padding_is_marked_and_counts_zero():
    units = trace_units(create_model("resnet18").eval(), torch.randn(1, 1, 96, 96))
    stem = explain_value(units[0], 0, 0, 0)  # 7x7, padding 3: the corner's window hangs over two edges
    (c,) = stem["channels"]
    assert c["padding"][0][0] and not c["padding"][6][6]
    assert c["window"][0][0] == 0 and c["products"][0][0] == 0


def test_a_residual_block_adds_its_main_path_and_its_shortcut():
    units = trace_units(create_model("resnet18").eval(), torch.randn(1, 1, 96, 96))
    blocks = [u for u in units if u.kind == "residual"]
    assert len(blocks) == 8
    first, downsampling = blocks[0], blocks[2]
    found = explain_value(first, 5, 3, 4)
    assert found["shortcut"]["layer"] == "the block's input (identity)"
    assert explain_value(downsampling, 0, 1, 1)["shortcut"]["layer"].endswith("conv3")  # the book's 1x1 conv


def test_a_position_outside_the_map_and_a_batch_are_refused():
    units = trace_units(create_model("lenet").eval(), torch.randn(1, 1, 28, 28))
    with pytest.raises(ConfigError, match="6 channels of 28x28: channel 6, row 0, column 0 is outside it"):
        explain_value(units[0], 6, 0, 0)
    with pytest.raises(ConfigError, match="one picture at a time"):
        trace_units(create_model("lenet"), torch.randn(2, 1, 28, 28))
