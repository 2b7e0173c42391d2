"""cnnzoo: the classic CNNs of Dive into Deep Learning's "Modern CNNs" chapter as real software.

Data flows one way: files -> :mod:`cnnzoo.data` (uint8 tensors on the device) -> batches ->
:mod:`cnnzoo.models` -> :mod:`cnnzoo.train.loop` (fit / evaluate) -> :mod:`cnnzoo.run` (the run layer: config,
model and data of a run, its directory) -> front ends (:mod:`cnnzoo.cli`, notebooks). See docs/architecture.md.

The names below are imported when first used (PEP 562), so ``import cnnzoo`` and ``cnnzoo --help`` do not pay
for PyTorch, matplotlib and captum until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# First, before anything imports torch: OpenMP reads its wait policy once, when torch loads it (cnnzoo.base.omp).
from cnnzoo.base.omp import choose_wait_policy

choose_wait_policy()

from cnnzoo._version import __version__  # noqa: E402

# public name -> (module, attribute in it)
_EXPORTS = {
    "Predictor": ("cnnzoo.serve.predictor", "Predictor"),
    "Run": ("cnnzoo.run", "Run"),
    "TrainConfig": ("cnnzoo.train.config", "TrainConfig"),
    "Weight": ("cnnzoo.weights", "Weight"),
    "create_model": ("cnnzoo.weights", "create_model"),
    "evaluate": ("cnnzoo.train.loop", "evaluate"),
    "fit": ("cnnzoo.train.loop", "fit"),
    "get_model_info": ("cnnzoo.models.registry", "get_model_info"),
    "get_weight": ("cnnzoo.weights", "get_weight"),
    "list_models": ("cnnzoo.models.registry", "list_models"),
    "list_weights": ("cnnzoo.weights", "list_weights"),
    "load_dataset": ("cnnzoo.data", "load_dataset"),
    "load_fashion_mnist": ("cnnzoo.data", "load_fashion_mnist"),
    "load_model": ("cnnzoo.serve.predictor", "load_model"),
    "new_run": ("cnnzoo.run", "new_run"),
    "open_run": ("cnnzoo.run", "open_run"),
    "progress_callbacks": ("cnnzoo.run.progress", "default_callbacks"),
    "register_model": ("cnnzoo.models.registry", "register_model"),
    "resolve_config": ("cnnzoo.train.recipes", "resolve_config"),
    "resume_run": ("cnnzoo.run", "resume_run"),
    "summary": ("cnnzoo.models.inspection", "summary"),
}

__all__ = [
    "Predictor",
    "Run",
    "TrainConfig",
    "Weight",
    "__version__",
    "create_model",
    "evaluate",
    "fit",
    "get_model_info",
    "get_weight",
    "list_models",
    "list_weights",
    "load_dataset",
    "load_fashion_mnist",
    "load_model",
    "new_run",
    "open_run",
    "progress_callbacks",
    "register_model",
    "resolve_config",
    "resume_run",
    "summary",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'cnnzoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from cnnzoo.data import load_dataset, load_fashion_mnist
    from cnnzoo.models.inspection import summary
    from cnnzoo.models.registry import get_model_info, list_models, register_model
    from cnnzoo.run import Run, new_run, open_run, resume_run
    from cnnzoo.run.progress import default_callbacks as progress_callbacks
    from cnnzoo.serve.predictor import Predictor, load_model
    from cnnzoo.train.config import TrainConfig
    from cnnzoo.train.loop import evaluate, fit
    from cnnzoo.train.recipes import resolve_config
    from cnnzoo.weights import Weight, create_model, get_weight, list_weights
