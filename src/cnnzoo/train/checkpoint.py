"""The one checkpoint format: plain data that ``torch.load(weights_only=True)`` accepts, written atomically.

A checkpoint is a dict of tensors and plain Python values (no pickled classes, no functions), so
loading one can never run code: :func:`load_checkpoint` always uses ``weights_only=True`` and turns a
refusal into :class:`~cnnzoo.base.errors.CheckpointError`. It holds

* ``model_name`` and ``model_kwargs``: enough to rebuild the network with :func:`cnnzoo.create_model`
  (``eval`` and ``predict`` need no model flags);
* ``model_state``: the weights;
* ``preprocess``: input size, channels, normalisation mean/std and class names (``predict`` needs them);
* ``config``: the resolved :class:`~cnnzoo.train.config.TrainConfig` as a dict;
* ``train``: optimizer, LR schedule, completed epochs, the unfinished epoch's totals, the history and the
  RNG states (:meth:`cnnzoo.train.state.TrainState.resume_dict`): what ``--resume`` needs;
* ``versions`` and ``device``: what wrote it.

Files are written to a temporary file beside the target, fsync'ed and ``os.replace``-d into place
(:mod:`cnnzoo.base.atomic`), so a ``kill -9`` at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
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
from cnnzoo.base.atomic import atomic_write
from cnnzoo.base.errors import CheckpointError, CnnzooError
from cnnzoo.models.registry import MAX_CHANNELS, MAX_CLASSES, check_input_size, create_model, get_model_info
from cnnzoo.train.config import TrainConfig, config_from_dict
from cnnzoo.train.metrics import low_confidence_bound
from cnnzoo.train.optim import parameter_groups

__all__ = [
    "FORMAT",
    "VERSION",
    "available_memory",
    "check_checkpoint",
    "checkpoint_payload",
    "export_metadata",
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
    """The checkpoint dict of a :class:`~cnnzoo.train.state.TrainState` (captures the RNG states now)."""
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
            # warn below this top probability (cnnzoo.train.metrics.low_confidence_bound of the validation split)
            "low_confidence": low_confidence_bound(getattr(getattr(state, "last_val", None), "confidence", None)),
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


def export_metadata(ckpt: Mapping[str, Any]) -> dict[str, str]:
    """What rebuilds and feeds a checkpoint's network, as the string metadata its exports carry (ONNX's
    ``metadata_props``, a safetensors header: :mod:`cnnzoo.serve.export`, :mod:`cnnzoo.weights`)."""
    pre = ckpt["preprocess"]
    return {
        "cnnzoo.model_name": str(ckpt["model_name"]),
        "cnnzoo.model_kwargs": json.dumps(ckpt["model_kwargs"], sort_keys=True),
        "cnnzoo.input_size": str(int(pre["input_size"])),
        "cnnzoo.in_channels": str(int(pre["in_channels"])),
        "cnnzoo.mean": json.dumps(pre["mean"]),
        "cnnzoo.std": json.dumps(pre["std"]),
        "cnnzoo.classes": json.dumps(list(pre["classes"])),
        "cnnzoo.version": __version__,
    }


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically.

    A full or read-only disk raises :class:`~cnnzoo.base.errors.FileWriteError` and leaves the previous file at
    ``path`` byte for byte as it was (no temporary file stays behind).
    """
    return atomic_write(path, lambda f: torch.save(dict(payload), f))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory: give a checkpoint file such as {path / 'last.pt'}")
    if path.exists() and not path.is_file():  # a FIFO would block the read forever, a device never end
        raise CheckpointError(f"{path} is not a regular file (a FIFO, socket or device): give a checkpoint file")
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
    version = ckpt.get("version", 0)
    if not _is_int(version):
        raise CheckpointError(f"{path}: field version is {type(version).__name__}, not a format number: {_DAMAGED}")
    if version > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {ckpt['version']} is newer than this cnnzoo reads ({VERSION}): upgrade cnnzoo"
        )
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: incomplete cnnzoo checkpoint (missing {', '.join(missing)})")
    ckpt["path"] = str(path)
    check_checkpoint(ckpt)
    return ckpt


# ------------------------------------------------------------------------------------------------
# the schema: every field of a loaded checkpoint is checked before anything uses it
# ------------------------------------------------------------------------------------------------
_DAMAGED = "the file was edited or damaged: use the run's other checkpoint (best.pt or last.pt) or train again"
_MAX_SIDE = 4096  # no network here takes more; a bigger side is a damaged file
_MAX_CHANNELS = MAX_CHANNELS
_MAX_CLASSES = MAX_CLASSES
_HISTORY_NUMBERS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")


def _bad_field(ckpt: Mapping[str, Any], field: str, what: str) -> CheckpointError:
    what = " ".join(what.split())  # a value's repr may span lines (a tensor): the message stays one line
    if len(what) > 300:
        what = what[:297] + "..."
    return CheckpointError(f"{ckpt.get('path', 'checkpoint')}: field {field} {what}: {_DAMAGED}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _kind(v: Any) -> str:
    return type(v).__name__


def check_checkpoint(ckpt: Mapping[str, Any]) -> None:
    """Check every field of a checkpoint dict against the schema :func:`checkpoint_payload` writes; a
    one-line :class:`CheckpointError` naming the file and the field for the first that does not fit."""
    _check_model_fields(ckpt)
    _check_state(ckpt)
    _check_preprocess(ckpt)
    _check_config(ckpt)
    _check_train(ckpt)
    try:
        _meta_build(ckpt)
    except CheckpointError:
        return  # model_from_checkpoint says why the model cannot be rebuilt
    _check_side(ckpt)  # export to safetensors never builds the model: check the side it records here


def _check_model_fields(ckpt: Mapping[str, Any]) -> None:
    name = ckpt["model_name"]
    if not isinstance(name, str) or not name:
        raise _bad_field(ckpt, "model_name", f"is a {_kind(name)}, not a model name")
    kwargs = ckpt["model_kwargs"]
    if not isinstance(kwargs, dict):
        raise _bad_field(ckpt, "model_kwargs", f"is a {_kind(kwargs)}, not a dict of keyword arguments")
    for key, value in kwargs.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise _bad_field(ckpt, "model_kwargs", f"has the key {key!r}, not a keyword argument name")
        if type(value) not in _PLAIN:
            raise _bad_field(ckpt, f"model_kwargs[{key!r}]", f"is a {_kind(value)}, not a plain value")
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad_field(ckpt, f"model_kwargs[{key!r}]", f"is {value}")
    for key in ("num_classes", "in_channels"):
        if key in kwargs and (not _is_int(kwargs[key]) or kwargs[key] < 1):
            raise _bad_field(ckpt, f"model_kwargs[{key!r}]", f"is {kwargs[key]!r}, not a positive whole number")


def _check_state(ckpt: Mapping[str, Any]) -> None:
    state = ckpt["model_state"]
    if not isinstance(state, Mapping) or not state:
        raise _bad_field(ckpt, "model_state", f"is a {_kind(state)}, not a dict of weight tensors")
    for key, value in state.items():
        if not isinstance(key, str):
            raise _bad_field(ckpt, "model_state", f"has the key {key!r}, not a parameter name")
        if not isinstance(value, torch.Tensor):
            raise _bad_field(ckpt, f"model_state[{key!r}]", f"is a {_kind(value)}, not a tensor")
    check_finite_weights(ckpt)


def check_finite_weights(ckpt: Mapping[str, Any]) -> None:
    """Refuse NaN or infinite weights, naming the first tensor that holds one."""
    for key, value in ckpt["model_state"].items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"{ckpt.get('path', 'checkpoint')}: weight {key} holds {bad} NaN or infinite value(s) (a diverged "
                "or damaged run): use an earlier checkpoint (best.pt) or train again with a lower --lr"
            )


def _section(ckpt: Mapping[str, Any], field: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """``ckpt[field]``, which must be a dict holding ``keys``."""
    value = ckpt[field]
    if not isinstance(value, dict):
        raise _bad_field(ckpt, field, f"is a {_kind(value)}, not a dict")
    missing = [k for k in keys if k not in value]
    if missing:
        raise _bad_field(ckpt, field, f"lacks {', '.join(missing)}")
    return value


def _check_preprocess(ckpt: Mapping[str, Any]) -> None:
    pre = _section(ckpt, "preprocess", ("input_size", "in_channels", "mean", "std", "classes"))
    side, channels = pre["input_size"], pre["in_channels"]
    if not _is_int(side) or not 1 <= side <= _MAX_SIDE:
        raise _bad_field(ckpt, "preprocess.input_size", f"is {side!r}, not a side of 1 to {_MAX_SIDE} pixels")
    if not _is_int(channels) or not 1 <= channels <= _MAX_CHANNELS:
        raise _bad_field(ckpt, "preprocess.in_channels", f"is {channels!r}, not 1 to {_MAX_CHANNELS} channels")
    if channels != ckpt["model_kwargs"].get("in_channels", 1):
        raise _bad_field(ckpt, "preprocess.in_channels", f"is {channels}, but the model takes "
                         f"{ckpt['model_kwargs'].get('in_channels', 1)}")  # fmt: skip
    for key in ("mean", "std"):
        _check_norm(ckpt, key, pre[key], channels)
    if (pre["mean"] is None) != (pre["std"] is None):
        raise _bad_field(ckpt, "preprocess.mean/std", "has one of the two only")
    classes = pre["classes"]
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise _bad_field(ckpt, "preprocess.classes", "is not a list of class names")
    if not 2 <= len(classes) <= _MAX_CLASSES or len(set(classes)) != len(classes):
        raise _bad_field(ckpt, "preprocess.classes", f"has {len(classes)} names (or repeats one)")
    if len(classes) != ckpt["model_kwargs"].get("num_classes", 10):
        raise _bad_field(ckpt, "preprocess.classes", f"has {len(classes)} names, but the model has "
                         f"{ckpt['model_kwargs'].get('num_classes', 10)} outputs")  # fmt: skip
    bound = pre.get("low_confidence")  # absent before it was recorded
    if bound is not None and not (_is_number(bound) and 0 < bound <= 1):
        raise _bad_field(ckpt, "preprocess.low_confidence", f"is {bound!r}, not a probability above 0, at most 1")


def _check_norm(ckpt: Mapping[str, Any], key: str, values: Any, channels: int) -> None:
    if values is None:
        return
    field = f"preprocess.{key}"
    if not isinstance(values, list) or not all(_is_number(v) for v in values):
        raise _bad_field(ckpt, field, "is not a list of numbers")
    if len(values) != channels:
        raise _bad_field(ckpt, field, f"has {len(values)} values for {channels} channel(s)")
    if not all(math.isfinite(v) for v in values) or (key == "std" and not all(v > 0 for v in values)):
        raise _bad_field(ckpt, field, f"is {values}: " + ("not all finite" if key == "mean" else "not all > 0"))


def _check_config(ckpt: Mapping[str, Any]) -> None:
    config = ckpt["config"]
    if not isinstance(config, dict):
        raise _bad_field(ckpt, "config", f"is a {_kind(config)}, not a dict of settings")
    try:
        config_from_dict(config)
    except CnnzooError as exc:
        raise _bad_field(ckpt, "config", f"does not hold a valid training config ({exc})") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise _bad_field(ckpt, "config", f"does not hold a valid training config ({exc})") from None


def _check_train(ckpt: Mapping[str, Any]) -> None:
    train = _section(ckpt, "train", ("epoch", "history", "optimizer", "scheduler", "rng"))
    epoch = train["epoch"]
    if not _is_int(epoch) or not 0 <= epoch <= 10**6:
        raise _bad_field(ckpt, "train.epoch", f"is {epoch!r}, not a count of completed epochs")
    _check_history(ckpt, train["history"], epoch)
    _check_partial(ckpt, train.get("partial"))
    _check_optimizer(ckpt, train["optimizer"])
    if not isinstance(train["scheduler"], dict):
        raise _bad_field(ckpt, "train.scheduler", f"is a {_kind(train['scheduler'])}, not a dict")
    _check_rng(ckpt, train["rng"])


def _check_history(ckpt: Mapping[str, Any], history: Any, epoch: int) -> None:
    if not isinstance(history, list):
        raise _bad_field(ckpt, "train.history", f"is a {_kind(history)}, not a list of epoch rows")
    if len(history) != epoch:
        raise _bad_field(ckpt, "train.history", f"has {len(history)} rows for {epoch} completed epochs")
    for i, row in enumerate(history):
        if not isinstance(row, dict) or row.get("epoch") != i + 1 or not _is_int(row.get("epoch")):
            raise _bad_field(ckpt, f"train.history[{i}]", f"is not the row of epoch {i + 1}")
        for key in _HISTORY_NUMBERS:
            if not _is_number(row.get(key)):
                raise _bad_field(ckpt, f"train.history[{i}].{key}", f"is {row.get(key)!r}, not a number")


def _check_partial(ckpt: Mapping[str, Any], partial: Any) -> None:
    if partial is None:
        return
    if not isinstance(partial, dict):
        raise _bad_field(ckpt, "train.partial", f"is a {_kind(partial)}, not a dict")
    for key in ("loss_sum", "correct"):
        if not isinstance(partial.get(key), torch.Tensor) or partial[key].numel() != 1:
            raise _bad_field(ckpt, f"train.partial.{key}", "is not a one-number tensor")
    for key in ("count", "step"):
        if not _is_int(partial.get(key)) or partial[key] < 0:
            raise _bad_field(ckpt, f"train.partial.{key}", f"is {partial.get(key)!r}, not a count")
    for key in ("seconds", "last_lr"):
        if not _is_number(partial.get(key)):
            raise _bad_field(ckpt, f"train.partial.{key}", f"is {partial.get(key)!r}, not a number")


def _check_optimizer(ckpt: Mapping[str, Any], opt: Any) -> None:
    field = "train.optimizer"
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict):
        raise _bad_field(ckpt, field, "is not an optimizer state (a dict with state and param_groups)")
    groups = opt.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               for g in groups):  # fmt: skip
        raise _bad_field(ckpt, f"{field}.param_groups", "is not a list of parameter groups")
    ids = [i for g in groups for i in g["params"]]
    if not all(_is_int(i) for i in ids) or sorted(ids) != list(range(len(ids))):
        raise _bad_field(ckpt, f"{field}.param_groups", "does not number the parameters 0, 1, 2, ...")
    for g in groups:
        if not _is_number(g.get("lr")) or not math.isfinite(g["lr"]) or g["lr"] < 0:
            raise _bad_field(ckpt, f"{field}.param_groups lr", f"is {g.get('lr')!r}, not a learning rate")
    for key, value in opt["state"].items():
        if key not in ids or not isinstance(value, dict):
            raise _bad_field(ckpt, f"{field}.state[{key!r}]", "belongs to no parameter")


def _check_rng(ckpt: Mapping[str, Any], rng: Any) -> None:
    if not isinstance(rng, dict) or not isinstance(rng.get("torch"), torch.Tensor):
        raise _bad_field(ckpt, "train.rng", "is not a set of random-number-generator states")
    if rng["torch"].dtype != torch.uint8 or rng["torch"].dim() != 1:
        raise _bad_field(ckpt, "train.rng.torch", "is not a torch generator state (a uint8 vector)")
    numpy, python = rng.get("numpy"), rng.get("python")
    if not isinstance(numpy, dict) or not isinstance(numpy.get("keys"), torch.Tensor) or numpy["keys"].numel() != 624:
        raise _bad_field(ckpt, "train.rng.numpy", "is not a numpy generator state")
    if not isinstance(python, dict) or not isinstance(python.get("internal"), torch.Tensor):
        raise _bad_field(ckpt, "train.rng.python", "is not a Python generator state")


# ------------------------------------------------------------------------------------------------
# rebuilding the model: on the meta device first, so a checkpoint cannot ask for more memory than there is
# ------------------------------------------------------------------------------------------------
def available_memory() -> int | None:
    """Bytes of memory this process could still allocate (MemAvailable; else the physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _model_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def _meta_build(ckpt: Mapping[str, Any]) -> nn.Module:
    path, name = ckpt.get("path", "checkpoint"), ckpt["model_name"]
    try:
        get_model_info(name)
        with torch.device("meta"):
            return create_model(name, **ckpt["model_kwargs"])
    except CnnzooError as exc:
        raise CheckpointError(f"{path}: cannot rebuild model {name!r}: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(f"{path}: model {name!r} no longer accepts its saved arguments ({exc})") from None
    except (ValueError, RuntimeError, OverflowError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: cannot rebuild model {name!r} with field model_kwargs ({first}): "
                              f"{_DAMAGED}") from None  # fmt: skip


def _check_fits(ckpt: Mapping[str, Any], meta: nn.Module) -> None:
    """The saved weights against the network's own names and shapes, before anything is allocated."""
    path, name = ckpt.get("path", "checkpoint"), ckpt["model_name"]
    want = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    have = ckpt["model_state"]
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    detail = ""
    if missing:
        detail = f"missing key(s) in field model_state: {', '.join(missing[:3])}"
    elif extra:
        detail = f"unexpected key(s) in field model_state: {', '.join(extra[:3])}"
    else:
        for k, shape in want.items():
            if tuple(have[k].shape) != shape:
                detail = f"field model_state[{k!r}] has shape {list(have[k].shape)}, the model needs {list(shape)}"
                break
    if detail:
        raise CheckpointError(f"{path}: weights do not fit model {name!r}: {detail}")


def _check_memory(ckpt: Mapping[str, Any], meta: nn.Module) -> None:
    need, have = _model_bytes(meta), available_memory()
    if have is not None and need > have:
        raise CheckpointError(
            f"{ckpt.get('path', 'checkpoint')}: model {ckpt['model_name']!r} with field model_kwargs "
            f"{ckpt['model_kwargs']} needs {need / 2**30:,.1f} GiB, more than the {have / 2**30:,.1f} GiB of memory "
            "available: the checkpoint is not a real run's (refused before allocating anything)"
        )


def model_from_checkpoint(ckpt: Mapping[str, Any]) -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (on the CPU).

    The network is built on the meta device first: its weights' names and shapes are checked against the
    checkpoint's and its size against the memory available, so a stranger's checkpoint asking for terabytes
    is refused in one line; NaN or infinite weights are refused too."""
    path = ckpt.get("path", "checkpoint")
    for key in ("model_name", "model_kwargs", "model_state"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: incomplete cnnzoo checkpoint (missing {key})")
    _check_model_fields(ckpt)
    _check_state(ckpt)
    meta = _meta_build(ckpt)
    _check_memory(ckpt, meta)
    _check_fits(ckpt, meta)
    _check_side(ckpt)
    _check_optimizer_fits(ckpt, meta)
    model = create_model(ckpt["model_name"], **ckpt["model_kwargs"])
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0] if first else ""
        raise CheckpointError(f"{path}: weights do not fit model {ckpt['model_name']!r}: {detail}") from None
    return model


def _check_side(ckpt: Mapping[str, Any]) -> None:
    pre = ckpt.get("preprocess")
    if not isinstance(pre, dict) or not _is_int(pre.get("input_size")):
        return
    try:
        check_input_size(ckpt["model_name"], pre["input_size"], ckpt["model_kwargs"])
    except CnnzooError as exc:
        raise _bad_field(ckpt, "preprocess.input_size", f"does not suit the model ({exc})") from None


def _check_optimizer_fits(ckpt: Mapping[str, Any], meta: nn.Module) -> None:
    """The optimizer state (``--resume`` loads it) against the network's parameters, in the engine's order
    (:func:`cnnzoo.train.optim.parameter_groups`)."""
    train = ckpt.get("train")
    opt = train.get("optimizer") if isinstance(train, dict) else None
    if not isinstance(opt, dict) or not isinstance(opt.get("param_groups"), list):
        return
    saved = ckpt.get("config")
    optimizer = str(saved.get("optimizer")) if isinstance(saved, dict) else TrainConfig.optimizer
    groups = parameter_groups(meta, TrainConfig(optimizer=optimizer))
    order = [p for group in groups for p in group["params"]]
    count = sum(len(g.get("params", [])) for g in opt["param_groups"] if isinstance(g, dict))
    if count != len(order):
        raise _bad_field(ckpt, "train.optimizer", f"holds {count} parameters, the model has {len(order)}")
    for key, value in opt.get("state", {}).items():
        if isinstance(value, dict) and _is_int(key) and key < count:
            _check_state_shapes(ckpt, key, value, order[key])


def _check_state_shapes(ckpt: Mapping[str, Any], key: int, value: Mapping[str, Any], param: torch.Tensor) -> None:
    for name, tensor in value.items():
        if isinstance(tensor, torch.Tensor) and tensor.dim() > 0 and tensor.shape != param.shape:
            raise _bad_field(
                ckpt,
                f"train.optimizer.state[{key}].{name}",
                f"has shape {list(tensor.shape)}, its parameter {list(param.shape)}",
            )
