"""The registry of named weights: one JSON file, ``catalog.json`` beside this module, read into :class:`Weight`.

A weight's name is ``MODEL[@SIDE].DATASET``: the registered model, its input side when that is not the book's,
and the dataset it was trained on with ``_`` for ``-`` (``lenet_bn.fashion_mnist``, ``resnet18@32.fashion_mnist``).
``MODEL.DATASET`` also names the model's default weight on that dataset, so ``resnet18.fashion_mnist`` is
``resnet18@32.fashion_mnist`` while that is the only ResNet-18 trained on Fashion-MNIST.

Each entry holds what loads the weight (model, keyword arguments, input side, channels, classes, normalisation,
file, storage, size, SHA-256) and what its card reports (``meta``: test and validation accuracy, the seeds'
mean and spread, parameters and MACs, the recipe and the exact command, the hardware, versions and date, the
per-class table and confusion matrix, the training curves). The catalog is data written by the maintainers'
publishing script (``benchmarks/weights/publish.py``) from finished runs; the cards in ``docs/weights/`` are
generated from it (:mod:`cnnzoo.weights.cards`).
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnzoo.base.errors import ConfigError

__all__ = [
    "CATALOG",
    "FILES_DIR",
    "NAME_RE",
    "UnknownWeightError",
    "Weight",
    "get_weight",
    "list_weights",
    "weight_for_model",
]

CATALOG = Path(__file__).with_name("catalog.json")
FILES_DIR = Path(__file__).with_name("files")
NAME_RE = re.compile(r"^(?P<model>[a-z][a-z0-9_]*)(?:@(?P<side>\d+))?\.(?P<dataset>[a-z][a-z0-9_]*)$")


class UnknownWeightError(ConfigError):
    """A weight name the catalog does not hold."""


@dataclass(frozen=True)
class Weight:
    """One named weight: what loads it, and ``meta``, what its card reports."""

    name: str
    model: str
    model_kwargs: Mapping[str, Any]
    dataset: str  # the dataset name as --dataset takes it (fashion-mnist)
    input_size: int
    in_channels: int
    classes: tuple[str, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    file: str  # the file's name (in the package when shipped, else in the user cache once built or fetched)
    shipped: bool
    storage: str  # fp32 | fp16 | int8 (cnnzoo.weights.storage)
    bytes: int
    sha256: str
    license: str
    config: Mapping[str, Any]  # the TrainConfig of the run the file came from (cnnzoo eval rebuilds its data)
    default: bool = False  # MODEL.DATASET names this weight
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def short_name(self) -> str:
        """``MODEL.DATASET``: the name that means this weight when it is the model's default."""
        return f"{self.model}.{_dataset_key(self.dataset)}"

    @property
    def test_acc(self) -> float:
        """This file's test accuracy, as ``cnnzoo eval NAME`` prints it."""
        return float(self.meta["test_acc"])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Weight:
        fields = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        fields["classes"] = tuple(d["classes"])
        for key in ("mean", "std"):
            fields[key] = tuple(d[key]) if d.get(key) is not None else None
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["classes"] = list(self.classes)
        for key in ("mean", "std"):
            out[key] = list(out[key]) if out[key] is not None else None
        out["model_kwargs"], out["config"], out["meta"] = dict(self.model_kwargs), dict(self.config), dict(self.meta)
        return out


def _dataset_key(dataset: str) -> str:
    return dataset.replace("-", "_")


def weight_name(model: str, input_size: int, dataset: str, book_side: int) -> str:
    """The name of ``model`` trained at ``input_size`` on ``dataset`` (the side appears when not the book's)."""
    side = "" if input_size == book_side else f"@{input_size}"
    return f"{model}{side}.{_dataset_key(dataset)}"


@functools.lru_cache(maxsize=1)
def _catalog() -> dict[str, Weight]:
    try:
        entries = json.loads(CATALOG.read_text(encoding="utf-8"))["weights"]
    except FileNotFoundError:
        return {}
    return {e["name"]: Weight.from_dict(e) for e in entries}


def list_weights(model: str | None = None) -> list[Weight]:
    """Every named weight (of ``model`` only, when given), by name."""
    return [w for name, w in sorted(_catalog().items()) if model is None or w.model == model]


def get_weight(name: str) -> Weight:
    """The weight ``name`` (a full name, or ``MODEL.DATASET`` for the model's default); else
    :class:`UnknownWeightError` naming the close matches."""
    catalog = _catalog()
    if name in catalog:
        return catalog[name]
    for w in catalog.values():
        if w.default and w.short_name == name:
            return w
    known = sorted({*catalog, *(w.short_name for w in catalog.values() if w.default)})
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "run `cnnzoo weights` for the list"
    raise UnknownWeightError(f"no weight named {name!r}: {hint}")


def weight_for_model(model: str, weights: str) -> Weight:
    """The weight ``weights`` of ``model``, as ``cnnzoo.create_model(model, weights=...)`` takes it: a dataset
    (``fashion_mnist``: the model's default weight on it), ``MODEL[@SIDE].DATASET``, or ``DEFAULT``."""
    if weights.upper() == "DEFAULT":
        mine = [w for w in list_weights(model) if w.default] or list_weights(model)
        if not mine:
            raise UnknownWeightError(f"no weight of {model} in the catalog: run `cnnzoo weights` for the list")
        return mine[0]
    if not NAME_RE.match(weights) and not weights.startswith("@"):
        weights = f"{model}.{weights}"
    elif weights.startswith("@"):
        weights = model + weights
    found = get_weight(weights)
    if found.model != model:
        raise ConfigError(f"weights {found.name!r} are {found.model}'s, not {model}'s: give one of {model}'s "
                          f"({', '.join(w.name for w in list_weights(model)) or 'none yet'})")  # fmt: skip
    return found
