"""summary, shape_trace, MACs, the model table, the Inception cost table, and `cnnzoo models|summary`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo.base.errors import ConfigError, InputTooSmallError
from cnnzoo.cli import main
from cnnzoo.models.googlenet import Inception
from cnnzoo.models.inspection import (
    count_macs,
    format_cost_table,
    format_models_table,
    inception_cost_table,
    models_table,
    parse_input_size,
    shape_trace,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"

GOOGLENET_D2L_TRACE = """\
Sequential output shape:\t torch.Size([1, 64, 24, 24])
Sequential output shape:\t torch.Size([1, 192, 12, 12])
Sequential output shape:\t torch.Size([1, 480, 6, 6])
Sequential output shape:\t torch.Size([1, 832, 3, 3])
Sequential output shape:\t torch.Size([1, 1024])
Linear output shape:\t torch.Size([1, 10])"""


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small ops on a shared 2-core machine


# ------------------------------------------------------------------------------------------------
# The book's Inception cost table
# ------------------------------------------------------------------------------------------------
def test_inception_cost_table_reproduces_the_book():
    """The book: Inception 0.16M weights / 128M MACs, 3x3 conv 0.44M / 346M, 5x5 conv 1.22M / 963M (biases
    excluded; the book truncates, so 346.8M prints as 346M and 1.2288M as 1.22M)."""
    rows = inception_cost_table()
    assert [(r.weights, r.macs) for r in rows] == [
        (163_328, 128_049_152),  # 12,288 + 18,432 + 110,592 + 3,072 + 12,800 + 6,144 weights, x 784 pixels
        (442_368, 346_816_512),  # 192 * 256 * 9, x 784
        (1_228_800, 963_379_200),  # 192 * 256 * 25, x 784
    ]
    assert rows[0].block == "Inception(192, 64, (96, 128), (16, 32), 32)"
    table = format_cost_table(rows)
    for text in ("0.16M", "128.0M", "0.44M", "346.8M", "1.23M", "963.4M"):
        assert text in table


def test_the_inception_block_keeps_hw_and_outputs_256_channels():
    block = Inception(192, 64, (96, 128), (16, 32), 32)
    assert block(torch.rand(1, 192, 28, 28)).shape == (1, 256, 28, 28)


def test_docs_show_the_tables_the_code_produces():
    text = DOCS.read_text(encoding="utf-8")
    assert format_cost_table(inception_cost_table()) in text
    assert format_models_table(models_table(), markdown=True) in text


# ------------------------------------------------------------------------------------------------
# MACs, summary, shape trace
# ------------------------------------------------------------------------------------------------
def test_count_macs_counts_conv_and_linear_only():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 5))
    assert count_macs(model, (1, 4, 4)) == 4 * 9 * 16 + 64 * 5


def test_resnet50_macs_are_the_published_figure():
    """4.09 GMACs ("4.1 GFLOPs" in the papers' convention) for ResNet-50 at 3x224x224."""
    with torch.device("meta"):
        model = cnnzoo.create_model("resnet50", in_channels=3, num_classes=1000)
    assert count_macs(model, 224) == pytest.approx(4.09e9, rel=0.005)


def test_summary_totals_rows_and_restored_mode():
    torch.manual_seed(0)
    model = cnnzoo.create_model("resnet18")  # in training mode
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = cnnzoo.summary(model, 96)
    assert s.total_params == s.trainable_params == 11_178_378
    assert s.input_shape == (1, 1, 96, 96)
    top = [r for r in s.rows if r.depth == 1]
    assert [r.name for r in top] == ["0", "1", "2", "3", "4", "5", "6", "7"]
    assert sum(r.params for r in top) == s.total_params
    assert sum(r.macs for r in top) == s.macs == count_macs(model, 96)
    assert top[-1].output_shape == (1, 10) and top[-1].type == "Linear"
    conv = next(r for r in s.rows if r.name == "0.0")
    assert (conv.type, conv.output_shape, conv.params) == ("Conv2d", (1, 64, 48, 48), 64 * 49 + 64)
    assert conv.macs == 64 * 49 * 48 * 48
    assert all(m.training for m in model.modules())  # training flags restored ...
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # ... statistics untouched
    text = str(s)
    assert "Total params:     11,178,378" in text and "0.0 (Conv2d)" in text


def test_summary_depth_limits_rows_not_totals():
    model = cnnzoo.create_model("googlenet")
    full, shallow = cnnzoo.summary(model, 96), cnnzoo.summary(model, 96, depth=1)
    assert len(shallow.rows) == 6 < len(full.rows)
    assert (shallow.total_params, shallow.macs) == (full.total_params, full.macs)


def test_summary_input_sizes():
    model = cnnzoo.create_model("lenet")
    assert cnnzoo.summary(model).input_shape == (1, 1, 28, 28)  # the model's default
    assert cnnzoo.summary(model, (28, 30)).input_shape == (1, 1, 28, 30)
    assert cnnzoo.summary(model, (1, 29, 29)).input_shape == (1, 1, 29, 29)
    with pytest.raises(ConfigError, match="1 input channels"):
        cnnzoo.summary(model, (3, 28, 28))
    with pytest.raises(InputTooSmallError, match="at least 28x28"):
        cnnzoo.summary(model, 20)


def test_shape_trace_googlenet_is_the_books():
    assert shape_trace(cnnzoo.create_model("googlenet")) == GOOGLENET_D2L_TRACE


def test_shape_trace_labels_named_children_by_name():
    with torch.device("meta"):
        model = cnnzoo.create_model("resnet50", small_input=True)
    lines = shape_trace(model, 28).splitlines()
    assert lines[0] == "conv1 output shape:\t torch.Size([1, 64, 28, 28])"
    assert lines[-1] == "fc output shape:\t torch.Size([1, 10])"
    assert "layer4 output shape:\t torch.Size([1, 2048, 4, 4])" in lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1x96x96", (1, 96, 96)), ("96", (3, 96, 96)), ("96x64", (3, 96, 64)), (" 3X32x32 ", (3, 32, 32))],
)
def test_parse_input_size(text, expected):
    assert parse_input_size(text, in_channels=3) == expected


@pytest.mark.parametrize("text", ["", "x", "96x", "1x2x3x4", "-1", "1.5", "ninety-six", "0x28x28", "28x0"])
def test_parse_input_size_rejects_junk(text):
    with pytest.raises(ConfigError):
        parse_input_size(text, in_channels=1)


def test_models_table_covers_every_model():
    rows = models_table()
    assert [r.name for r in rows] == cnnzoo.list_models()
    by_name = {r.name: r for r in rows}
    assert by_name["googlenet"].macs == 276_066_304
    assert by_name["alexnet"].input_size == 224 and by_name["alexnet"].min_input_size == 193


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------
def test_cli_models_lists_all_fifteen(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for row in models_table():
        line = next(line for line in out.splitlines() if line.split()[:1] == [row.name])
        assert f"{row.params:,}" in line and f"{row.input_size}x{row.input_size}" in line
    assert "5,977,530" in out and "276M" in out  # googlenet's parameters and MACs


def test_cli_summary_googlenet_prints_the_books_trace_and_the_table(capsys):
    assert main(["summary", "googlenet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(GOOGLENET_D2L_TRACE + "\n")
    assert "4.1 (Inception)" in out and "Total params:     5,977,530" in out


def test_cli_summary_input_size_sets_the_channels(capsys):
    assert main(["summary", "resnet18", "--input-size", "3x64x64", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "Input shape:      [1, 3, 64, 64]" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "alexnet", "--input-size", "1x28x28"], "alexnet needs inputs of at least 193x193"),
        (["summary", "resnet19"], "did you mean resnet18"),
        (["summary", "lenet", "--input-size", "28xx28"], "invalid input size"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
