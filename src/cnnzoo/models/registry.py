"""The model registry: one strict name -> builder table.

Builders are registered with :func:`register_model` in ``cnnzoo/models/<family>.py``. A duplicate name
raises at import time; an unknown name raises :class:`~cnnzoo.base.errors.UnknownModelError` (a
``ValueError``) naming the close matches. Every model built here knows its default and minimum input
size, and refuses a smaller input with :class:`~cnnzoo.base.errors.InputTooSmallError` before any layer runs
(instead of a shape error deep inside the network); a model whose classifier takes a fixed-size feature
map also declares a maximum and refuses a larger input with :class:`~cnnzoo.base.errors.ModelError`.

A *model spec* names a model with its keyword arguments and, optionally, its input side, as the command
line takes it: ``NAME[:KWARG[=VALUE][,KWARG...]][@SIDE]`` (:func:`parse_model_spec`): ``resnet18:small_input``
is ``create_model("resnet18", small_input=True)``, ``googlenet@32`` GoogLeNet at 32x32.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnzoo.base.errors import ArgumentTypeError, ConfigError, InputTooSmallError, ModelError, UnknownModelError

__all__ = [
    "BookTraining",
    "ModelInfo",
    "ModelSpec",
    "check_input_size",
    "create_model",
    "get_model_info",
    "input_size_limits",
    "list_models",
    "meta_model",
    "parse_model_spec",
    "parse_number",
    "register_model",
]


@dataclass(frozen=True)
class BookTraining:
    """How the book's ``train_ch6`` call trains a network: its learning rate, batch size and input side (the
    ``resize`` of its data loader). The ``d2l`` recipe (:mod:`cnnzoo.train.recipes`) reads it."""

    lr: float
    batch_size: int
    input_size: int


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model without building it.

    ``default_input_size``: the side the book trains it at (the CLI resizes to it).
    ``min_input_size``: the smallest square side the network accepts with default arguments.
    ``max_input_size``: the largest, for networks whose classifier takes a fixed-size feature map
    (LeNet, AlexNet, VGG); ``None`` when any size from the minimum up works.
    ``book_training``: how the book trains it, for the networks the book trains.
    """

    name: str
    builder: Callable[..., nn.Module]
    default_input_size: int
    min_input_size: int
    family: str
    description: str
    max_input_size: int | None = None
    book_training: BookTraining | None = None


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    name: str | None = None,
    *,
    input_size: int,
    min_input_size: int,
    family: str | None = None,
    max_input_size: int | None = None,
    book_training: BookTraining | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``fn(*, num_classes, in_channels, **kwargs) -> nn.Module`` under ``name``.

    The name defaults to the function's name; the family to its module's last component; the
    description to the first line of its docstring.
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is already registered (by {_REGISTRY[key].builder.__module__})")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelInfo(
            name=key,
            builder=fn,
            default_input_size=int(input_size),
            min_input_size=int(min_input_size),
            family=family or fn.__module__.rsplit(".", 1)[-1],
            description=doc[0] if doc else "",
            max_input_size=None if max_input_size is None else int(max_input_size),
            book_training=book_training,
        )
        return fn

    return decorator


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of ``name``; raises :class:`UnknownModelError` with close matches."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"the model name must be text such as 'resnet18' (see list_models()), not {name!r}")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `cnnzoo models` for the list"
        raise UnknownModelError(f"unknown model {name!r}: {hint}") from None


def create_model(name: str, *, num_classes: int = 10, in_channels: int = 1, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``.

    The returned module has ``model_name``, ``model_kwargs`` (everything needed to rebuild it),
    ``default_input_size`` and ``min_input_size`` attributes. A builder may set its own
    ``min_input_size``/``default_input_size`` on the module when its keyword arguments change them
    (``small_input=True`` does).
    """
    info = get_model_info(name)
    _check_count("num_classes", num_classes, MAX_CLASSES)
    _check_count("in_channels", in_channels, MAX_CHANNELS)
    model = info.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    model.model_name = name
    model.model_kwargs = {"num_classes": num_classes, "in_channels": in_channels, **kwargs}
    if not hasattr(model, "default_input_size"):
        model.default_input_size = info.default_input_size
    if not hasattr(model, "min_input_size"):
        model.min_input_size = info.min_input_size
    if not hasattr(model, "max_input_size"):
        model.max_input_size = info.max_input_size
    model.register_forward_pre_hook(_check_input_size)
    return model


MAX_CLASSES = 100_000  # a head this wide on AlexNet is 1.6 GB already; ImageNet-21k has 21,841 classes
MAX_CHANNELS = 64


def _check_count(name: str, value: Any, top: int) -> None:
    """``value`` must be a whole number from 1 to ``top`` (a bigger one would allocate without bound)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ArgumentTypeError(f"{name} must be a whole number such as 10, not {value!r}")
    if not 1 <= value <= top:
        raise ConfigError(f"{name} {value}: must be from 1 to {top:,}")


def _check_input_size(module: nn.Module, args: tuple) -> None:
    if not args or not hasattr(args[0], "shape") or args[0].dim() < 3:
        return
    h, w = args[0].shape[-2:]
    m = module.min_input_size
    if h < m or w < m:
        raise InputTooSmallError(
            f"{module.model_name} needs inputs of at least {m}x{m} pixels, got {h}x{w}: "
            f"resize to {module.default_input_size} (--input-size {module.default_input_size})"
        )
    top = getattr(module, "max_input_size", None)
    if top is not None and (h > top or w > top):
        raise ModelError(
            f"{module.model_name} accepts inputs from {m}x{m} to {top}x{top} pixels (its classifier takes "
            f"a fixed-size feature map), got {h}x{w}: resize to {module.default_input_size} "
            f"(--input-size {module.default_input_size})"
        )


# ------------------------------------------------------------------------------------------------
# model specs: NAME[:KWARG[=VALUE],...][@SIDE]
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """A registry name, the keyword arguments for :func:`create_model`, and an optional input side."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_size: int | None = None

    @property
    def label(self) -> str:
        """The spec without its side: ``resnet18:small_input``, ``densenet:growth=16``."""
        if not self.kwargs:
            return self.name
        parts = [k if v is True else f"{k}={json.dumps(v)}" for k, v in sorted(self.kwargs.items())]
        return f"{self.name}:{','.join(parts)}"


def parse_number(text: str) -> int | float | str:
    """``text`` as an int, else a float, else itself: **the one number parser** (a model spec's values, a metrics
    CSV's cells)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    return parse_number(text)


def parse_model_spec(text: str) -> ModelSpec:
    """Parse ``NAME[:KWARG[=VALUE],...][@SIDE]``; the name must be registered (the kwargs are checked by
    :func:`meta_model`). A KWARG alone means True; true/false and numbers are converted."""
    spec, side = text.strip(), None
    if "@" in spec:
        spec, _, side_text = spec.rpartition("@")
        if not side_text.isdigit() or int(side_text) < 1:
            raise ConfigError(f"model {text!r}: the side after @ must be a positive whole number, as in googlenet@32")
        side = int(side_text)
    name, _, rest = spec.partition(":")
    get_model_info(name)  # an unknown name fails here, with close matches
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not key.isidentifier():
            raise ConfigError(f"model {text!r}: {key!r} is not a keyword argument name (write NAME:KEY[=VALUE],...)")
        kwargs[key] = _parse_value(value) if eq else True
    return ModelSpec(name, kwargs, side)


def meta_model(name: str, kwargs: Mapping[str, Any] | None = None, *, num_classes: int = 10, in_channels: int = 1):
    """``create_model(name, **kwargs)`` on PyTorch's meta device: instant and allocation-free, for what the
    network *is* under these kwargs (input size limits, parameters, MACs). A keyword the builder does not
    take is a :class:`ConfigError` naming the ones it does."""
    info = get_model_info(name)
    kwargs = dict(kwargs or {})
    params = inspect.signature(info.builder).parameters.values()
    allowed = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    unknown = [k for k in kwargs if k not in allowed or k in ("num_classes", "in_channels")]
    label = ModelSpec(name, kwargs).label
    if unknown:
        usable = [k for k in allowed if k not in ("num_classes", "in_channels", "norm_layer")]
        takes = f"it takes {', '.join(usable)}" if usable else "it takes none"
        raise ConfigError(f"model {label}: {name} has no keyword argument {unknown[0]!r} ({takes})")
    try:
        with torch.device("meta"):
            return create_model(name, num_classes=num_classes, in_channels=in_channels, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {label}: {exc}") from None


# ------------------------------------------------------------------------------------------------
# the input-size rule: one place says which square sides a network takes
# ------------------------------------------------------------------------------------------------
_DATA_KWARGS = ("num_classes", "in_channels")


def input_size_limits(name: str, kwargs: Mapping[str, Any] | None = None) -> tuple[int, int, int | None]:
    """``(default, minimum, maximum)`` input side of ``name`` built with ``kwargs`` (``maximum`` None: no
    limit). Keyword arguments can change them (``small_input=True`` lowers ResNet's and DenseNet's), so
    with any the network itself is asked, built on the meta device."""
    kwargs = dict(kwargs or {})
    data = {k: kwargs.pop(k) for k in _DATA_KWARGS if k in kwargs}
    if not kwargs:
        info = get_model_info(name)
        return info.default_input_size, info.min_input_size, info.max_input_size
    model = meta_model(name, kwargs, **data)
    return int(model.default_input_size), int(model.min_input_size), model.max_input_size


def check_input_size(name: str, side: int | None, kwargs: Mapping[str, Any] | None = None) -> int:
    """``side`` if ``name`` (with ``kwargs``) takes it, its default side when ``side`` is None; else a
    :class:`ConfigError` naming the limit and the default to use instead."""
    default, low, high = input_size_limits(name, kwargs)
    if side is None:
        return default
    if side < low:
        raise ConfigError(f"--input-size {side} is below {name}'s minimum input size {low}: use --input-size {default}")
    if high is not None and side > high:
        raise ConfigError(
            f"--input-size {side} is above {name}'s maximum input size {high} "
            f"(its classifier takes a fixed-size feature map): use --input-size {default}"
        )
    return side
