"""The one checkpoint format: plain data that ``torch.load(weights_only=True)`` accepts, written atomically.

A checkpoint is a dict of tensors and plain Python values (no pickled classes, no functions), so
loading one can never run code: :func:`load_checkpoint` always uses ``weights_only=True`` and turns a
refusal into :class:`~cnnzoo.errors.CheckpointError`. It holds

* ``model_name`` and ``model_kwargs``: enough to rebuild the network with :func:`cnnzoo.create_model`
  (``eval`` and ``predict`` need no model flags);
* ``model_state``: the weights;
* ``preprocess``: input size, channels, normalisation mean/std and class names (``predict`` needs them);
* ``config``: the resolved :class:`~cnnzoo.config.TrainConfig` as a dict;
* ``train``: optimizer, LR schedule, completed epochs, the unfinished epoch's totals, the history and the
  RNG states (:meth:`cnnzoo.engine.TrainState.resume_dict`): what ``--resume`` needs;
* ``versions`` and ``device``: what wrote it.

Files are written to a temporary file beside the target, fsync'ed and ``os.replace``-d into place
(:mod:`cnnzoo.atomic`), so a ``kill -9`` at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo._version import __version__
from cnnzoo.atomic import atomic_write
from cnnzoo.errors import CheckpointError, CnnzooError
from cnnzoo.registry import create_model

__all__ = [
    "FORMAT",
    "VERSION",
    "checkpoint_payload",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
]

FORMAT = "cnnzoo-checkpoint"
VERSION = 1
_REQUIRED = ("model_name", "model_kwargs", "model_state", "preprocess", "config", "train")
_PLAIN = (str, int, float, bool, type(None))


def checkpoint_payload(
    state: Any,
    *,
    classes: Sequence[str],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    input_size: int,
    in_channels: int,
) -> dict[str, Any]:
    """The checkpoint dict of a :class:`~cnnzoo.engine.TrainState` (captures the RNG states now)."""
    model = state.model
    kwargs = dict(getattr(model, "model_kwargs", {}))
    _require_plain(kwargs, "model_kwargs")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_name": getattr(model, "model_name", None) or state.config.model,
        "model_kwargs": kwargs,
        "model_state": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "preprocess": {
            "input_size": int(input_size),
            "in_channels": int(in_channels),
            "mean": [float(m) for m in mean] if mean is not None else None,
            "std": [float(s) for s in std] if std is not None else None,
            "classes": [str(c) for c in classes],
        },
        "config": state.config.to_dict(),
        "train": _to_cpu(state.resume_dict()),
        "versions": {"cnnzoo": str(__version__), "torch": str(torch.__version__)},
        "device": state.setup.label,
    }
    _require_plain(payload, "checkpoint")
    return payload


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, Mapping):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _require_plain(obj: Any, where: str) -> None:
    """Refuse at save time what ``weights_only`` would refuse at load time.

    Exact types only: a ``str`` subclass such as ``torch.__version__`` (a ``TorchVersion``) is pickled
    as its class and would make the whole file unloadable.
    """
    if isinstance(obj, torch.Tensor):
        return
    if type(obj) in (dict, OrderedDict):
        for k, v in obj.items():
            _require_plain(k, f"{where} key")
            _require_plain(v, f"{where}[{k!r}]")
    elif type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _require_plain(v, f"{where}[{i}]")
    elif type(obj) not in _PLAIN:
        raise TypeError(f"{where} is a {type(obj).__name__}; checkpoints hold plain data only")


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically.

    A full or read-only disk raises :class:`~cnnzoo.errors.FileWriteError` and leaves the previous file at
    ``path`` byte for byte as it was (no temporary file stays behind).
    """
    return atomic_write(path, lambda f: torch.save(dict(payload), f))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory: give a checkpoint file such as {path / 'last.pt'}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read it ({exc.strerror})") from None
    if not head:
        raise CheckpointError(f"{path}: the file is empty (an interrupted copy?)")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": every failure is one line below
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported operand" in str(exc) and head[:1] != b"\x80":  # no pickle at all (a text file, say)
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint file: give a last.pt or best.pt from a cnnzoo run directory"
            ) from None
        raise CheckpointError(
            f"{path}: refused to load: it contains pickled objects other than tensors and plain data, "
            "which could run code (cnnzoo loads checkpoints with weights_only=True only)"
        ) from None
    except Exception as exc:  # zip/pickle framing errors: RuntimeError, EOFError, KeyError, ...
        if head == b"PK\x03\x04":
            raise CheckpointError(
                f"{path}: truncated or corrupt checkpoint ({type(exc).__name__}): copy it again, or use the "
                "run's other checkpoint (best.pt or last.pt)"
            ) from None
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint file: give a last.pt or best.pt from a cnnzoo run directory"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a PyTorch file, but not a cnnzoo checkpoint (a bare state_dict? load it in Python with "
            "cnnzoo.create_model(name).load_state_dict(torch.load(path, weights_only=True)))"
        )
    if int(ckpt.get("version", 0)) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {ckpt['version']} is newer than this cnnzoo reads ({VERSION}): upgrade cnnzoo"
        )
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete cnnzoo checkpoint (missing {', '.join(missing)})")
    ckpt["path"] = str(path)
    return ckpt


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (on the CPU)."""
    name = ckpt["model_name"]
    try:
        model = create_model(name, **ckpt["model_kwargs"])
    except CnnzooError as exc:
        raise CheckpointError(f"{ckpt.get('path', 'checkpoint')}: cannot rebuild model {name!r}: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(
            f"{ckpt.get('path', 'checkpoint')}: model {name!r} no longer accepts its saved arguments ({exc})"
        ) from None
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
        raise CheckpointError(
            f"{ckpt.get('path', 'checkpoint')}: weights do not fit model {name!r}: {detail}"
        ) from None
    return model
