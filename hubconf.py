"""torch.hub entry points: one per registered cnnzoo model, built from the registry.

    model = torch.hub.load("cnnzoo/cnnzoo", "resnet18", num_classes=7, in_channels=3)
    model = torch.hub.load("/path/to/cnnzoo", "resnet18", source="local", weights="fashion_mnist")

Each entry point is ``cnnzoo.create_model(name, weights=None, **kwargs)``: untrained by default; ``weights`` names
one of cnnzoo's trained weights (``"fashion_mnist"``, a full name such as ``"resnet18@32.fashion_mnist"``, or
``"DEFAULT"``; ``cnnzoo weights`` lists them), and ``pretrained=True`` means ``weights="DEFAULT"``, as in
torchvision's older entry points. This file imports the cnnzoo in
this repository's ``src/`` (a clone, or torch.hub's download of the repository) ahead of an installed one,
so the entry points match the code beside them, unless the process has imported a cnnzoo already.
"""

import sys as _sys
from pathlib import Path as _Path

dependencies = ["torch", "torchvision"]

_SRC = _Path(__file__).resolve().parent / "src"
if (_SRC / "cnnzoo" / "__init__.py").is_file() and "cnnzoo" not in _sys.modules and str(_SRC) not in _sys.path:
    _sys.path.insert(0, str(_SRC))

from cnnzoo.base.errors import ConfigError as _ConfigError  # noqa: E402
from cnnzoo.models.registry import get_model_info as _get_model_info  # noqa: E402
from cnnzoo.models.registry import list_models as _list_models  # noqa: E402
from cnnzoo.weights import create_model as _create_model  # noqa: E402
from cnnzoo.weights import list_weights as _list_weights  # noqa: E402


def _entry_point(name: str):
    info = _get_model_info(name)

    def build(*, weights=None, pretrained: bool = False, **kwargs):
        if pretrained and weights is None:
            weights = "DEFAULT"
        if weights is not None and not _list_weights(name):
            raise _ConfigError(f"cnnzoo has no trained weights for {name} yet: build it untrained (weights=None) "
                               "and train it, or load your own checkpoint with cnnzoo.load_model(RUN_DIR)")  # fmt: skip
        return _create_model(name, weights=weights, **kwargs)

    limits = f"from {info.min_input_size}x{info.min_input_size}" + (
        f" to {info.max_input_size}x{info.max_input_size}" if info.max_input_size is not None else " up"
    )
    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (
        f"{info.description}\n\n"
        f"``cnnzoo.create_model({name!r}, weights=None, **kwargs)``: untrained unless ``weights`` names trained "
        f"ones ({', '.join(w.name for w in _list_weights(name)) or 'none yet'}). Keyword arguments: ``num_classes`` "
        "(default 10), "
        f"``in_channels`` (default 1) and the builder's own. Trained at {info.default_input_size}x"
        f"{info.default_input_size}; accepts inputs {limits}.\n"
    )
    return build


for _name in _list_models():
    globals()[_name] = _entry_point(_name)
