"""Named trained weights: the zoo's networks trained on Fashion-MNIST, with their model cards, in one line.

    model = cnnzoo.create_model("resnet18", weights="fashion_mnist")     # an nn.Module with the trained weights
    cnnzoo.load_model("lenet_bn.fashion_mnist").predict("shoe.jpg")     # with the picture preparation it needs
    cnnzoo.list_weights()                                               # every weight, with its figures

On the command line a weight's name goes wherever a run directory does (``cnnzoo predict``, ``eval``,
``explain``, ``export``), and ``cnnzoo weights`` lists them. The registry is :mod:`cnnzoo.weights.catalog`, the
file format :mod:`cnnzoo.weights.storage`, where files are :mod:`cnnzoo.weights.files`; ``docs/weights.md``
is the table and ``docs/weights/NAME.md`` each weight's card.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from cnnzoo.base.errors import ConfigError
from cnnzoo.models.registry import create_model as _build
from cnnzoo.train.checkpoint import model_from_checkpoint
from cnnzoo.weights.catalog import (
    UnknownWeightError,
    Weight,
    get_weight,
    list_weights,
    weight_for_model,
)
from cnnzoo.weights.files import weight_checkpoint

__all__ = [
    "UnknownWeightError",
    "Weight",
    "create_model",
    "get_weight",
    "list_weights",
    "weight_checkpoint",
]


def create_model(name: str, *, weights: str | Weight | None = None, **kwargs: Any) -> nn.Module:
    """:func:`cnnzoo.models.registry.create_model`, with trained ``weights`` when given: a dataset name
    (``"fashion_mnist"``: the model's default weight on it), a weight's full name, ``"DEFAULT"``, or a
    :class:`Weight`. The model comes in training mode, as torchvision's do: call ``.eval()`` to classify.
    Its ``weights`` attribute is the :class:`Weight`; its input side is the weight's (``weights.input_size``)."""
    if weights is None:
        return _build(name, **kwargs)
    weight = weights if isinstance(weights, Weight) else weight_for_model(name, weights)
    if weight.model != name:
        raise ConfigError(f"weights {weight.name!r} are {weight.model}'s, not {name}'s")
    fixed = {"num_classes": len(weight.classes), "in_channels": weight.in_channels, **weight.model_kwargs}
    clash = [k for k, v in kwargs.items() if k not in fixed or fixed[k] != v]
    if clash:
        trained = ", ".join(f"{k}={v!r}" for k, v in fixed.items())
        raise ConfigError(f"{weight.name} was trained as {name}({trained}): drop {', '.join(clash)} (a network "
                          "built with other arguments cannot take these weights)")  # fmt: skip
    model = model_from_checkpoint(weight_checkpoint(weight))
    model.default_input_size = weight.input_size
    model.weights = weight
    return model
