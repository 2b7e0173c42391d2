"""cnnzoo.models.graphs: every registered network described as the book draws its blocks."""

from __future__ import annotations

import collections

import pytest

import cnnzoo
from cnnzoo.models.graphs import block_graph, layer_label
from cnnzoo.models.registry import meta_model


def _kinds(graph: dict, found: collections.Counter) -> collections.Counter:
    found[graph["kind"]] += 1
    for block in graph["blocks"]:
        _kinds(block, found)
    return found


def _graphs(name: str) -> list[dict]:
    return [block_graph(stage) for stage in meta_model(name).children()]


@pytest.mark.parametrize("name", cnnzoo.list_models())
def test_every_network_is_a_graph_whose_layers_all_have_names(name):
    kinds = collections.Counter()
    for graph in _graphs(name):
        _kinds(graph, kinds)
    assert set(kinds) <= {"layer", "sequence", "inception", "residual", "dense", "nin"}
    assert kinds["layer"] + kinds["inception"] + kinds["residual"] + kinds["dense"] + kinds["nin"] > 0


@pytest.mark.parametrize(
    ("name", "kind", "count"),
    [("googlenet", "inception", 9), ("resnet18", "residual", 8), ("resnet50", "residual", 16),
     ("densenet", "dense", 4), ("densenet121", "dense", 4), ("nin", "nin", 4)],
)  # fmt: skip
def test_the_families_blocks_are_found(name, kind, count):
    kinds = collections.Counter()
    for graph in _graphs(name):
        _kinds(graph, kinds)
    assert kinds[kind] == count


def test_an_inception_block_has_the_books_four_paths_and_a_residual_block_its_shortcut():
    inception = _graphs("googlenet")[2]["blocks"][0]
    assert inception["paths"] == [["1×1 conv, 64"], ["1×1 conv, 96", "3×3 conv, 128"], ["1×1 conv, 16", "5×5 conv, 32"],
                                  ["3×3 max pool", "1×1 conv, 32"]]  # fmt: skip
    assert inception["join"].startswith("concatenate")
    first, second = _graphs("resnet18")[2]["blocks"]
    assert first["paths"][1] == ["1×1 conv, 128, stride 2"] and second["paths"][1] == ["identity"]
    assert first["join"].startswith("add")
    bottleneck = _graphs("resnet50")[4]["blocks"][0]
    assert bottleneck["paths"][0][:3] == ["1×1 conv, 64", "batch norm", "ReLU"]
    assert bottleneck["paths"][1] == ["1×1 conv, 256", "batch norm"]


def test_layers_are_named_in_the_books_words():
    from torch import nn

    assert layer_label(nn.Conv2d(1, 6, kernel_size=5, padding=2)) == "5×5 conv, 6"
    assert layer_label(nn.MaxPool2d(3, stride=2)) == "3×3 max pool, stride 2"
    assert layer_label(nn.AdaptiveAvgPool2d((1, 1))) == "global average pool"
    assert layer_label(nn.Linear(84, 10)) == "linear, 10"
    assert layer_label(nn.Dropout(0.5)) == "dropout 0.5"
