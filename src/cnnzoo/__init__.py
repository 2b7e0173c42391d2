"""cnnzoo: the classic CNNs of Dive into Deep Learning's "Modern CNNs" chapter as real software.

Data flows one way: files -> :mod:`cnnzoo.data` (uint8 tensors on the device) -> batches ->
:mod:`cnnzoo.models` -> :mod:`cnnzoo.engine` (fit / evaluate) -> run directory -> :mod:`cnnzoo.cli`.
"""

from cnnzoo.config import TrainConfig, resolve_config
from cnnzoo.data import load_dataset, load_fashion_mnist
from cnnzoo.engine import evaluate, fit
from cnnzoo.inspection import summary
from cnnzoo.registry import create_model, get_model_info, list_models, register_model

__version__ = "0.1.0"

__all__ = [
    "TrainConfig",
    "__version__",
    "create_model",
    "evaluate",
    "fit",
    "get_model_info",
    "list_models",
    "load_dataset",
    "load_fashion_mnist",
    "register_model",
    "resolve_config",
    "summary",
]
