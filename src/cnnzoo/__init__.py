"""cnnzoo: the classic CNNs of Dive into Deep Learning's "Modern CNNs" chapter as real software.

Data flows one way: files -> :mod:`cnnzoo.data` (uint8 tensors on the device) -> batches ->
:mod:`cnnzoo.models` -> :mod:`cnnzoo.engine` (fit / evaluate) -> :mod:`cnnzoo.run` (the run layer: config,
model and data of a run, its directory) -> front ends (:mod:`cnnzoo.cli`, notebooks). See docs/architecture.md.
"""

# First, before anything imports torch: OpenMP reads its wait policy once, when torch loads it (cnnzoo._omp).
from cnnzoo._omp import choose_wait_policy

choose_wait_policy()

from cnnzoo._version import __version__  # noqa: E402
from cnnzoo.config import TrainConfig, resolve_config  # noqa: E402
from cnnzoo.data import load_dataset, load_fashion_mnist  # noqa: E402
from cnnzoo.engine import evaluate, fit  # noqa: E402
from cnnzoo.inspection import summary  # noqa: E402
from cnnzoo.predictor import Predictor, load_model  # noqa: E402
from cnnzoo.progress import default_callbacks as progress_callbacks  # noqa: E402
from cnnzoo.registry import get_model_info, list_models, register_model  # noqa: E402
from cnnzoo.run import Run, new_run, open_run, resume_run  # noqa: E402
from cnnzoo.weights import Weight, create_model, get_weight, list_weights  # noqa: E402

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
