"""What names a trained model on the command line and in Python: a run directory (its ``last.pt``), a checkpoint
file, or a named weight (``lenet_bn.fashion_mnist``; :mod:`cnnzoo.weights`).

:func:`load_trained` is the one place that tells them apart, so ``eval``, ``predict``, ``explain``, ``export``,
:func:`cnnzoo.load_model` and the studio take all three the same way. A path that exists wins over a weight of
the same name; a name shaped like a weight's that is neither gets the weights' close matches.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from cnnzoo.checkpoint import load_checkpoint
from cnnzoo.registry import list_models
from cnnzoo.run.directory import resolve_run_dir
from cnnzoo.weights import get_weight, weight_checkpoint

__all__ = ["load_trained"]

_WEIGHTISH = re.compile(r"^(?P<model>[a-z][a-z0-9_]*)(@\d+)?\.[a-z][a-z0-9_]*$")  # MODEL[@SIDE].DATASET


def _is_path(source: str | os.PathLike[str]) -> bool:
    """Whether ``source`` means a file or directory: it exists, or it is not ``MODEL[@SIDE].DATASET`` with a
    registered MODEL (``last.pt`` that is missing is a missing checkpoint, not an unknown weight)."""
    p = Path(source)
    match = _WEIGHTISH.match(str(source))
    return p.exists() or p.is_symlink() or match is None or match["model"] not in list_models()


def load_trained(source: str | os.PathLike[str]) -> tuple[Path | None, dict[str, Any]]:
    """``(run directory, checkpoint dict)`` of a run directory or checkpoint file; ``(None, the weight as a
    checkpoint dict)`` of a weight's name (:func:`cnnzoo.weights.weight_checkpoint`)."""
    if _is_path(source):
        directory, ckpt = resolve_run_dir(source)
        return directory, load_checkpoint(ckpt)
    return None, weight_checkpoint(get_weight(str(source)))
