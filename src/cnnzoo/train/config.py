"""Training configuration: one dataclass with every hyperparameter, its choices and its checks, without torch.

A run is fully described by a :class:`TrainConfig`. :func:`validate_config` checks one and raises
:class:`~cnnzoo.base.errors.ConfigError` with a one-line message naming the setting. The recipes and
:func:`~cnnzoo.train.recipes.resolve_config`, which builds a config from a model name, live in
:mod:`cnnzoo.train.recipes`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnzoo.base.errors import ConfigError

__all__ = [
    "AUGMENTS",
    "DEFAULT_MODEL",
    "OPTIMIZERS",
    "PRECISIONS",
    "RECIPE_NAMES",
    "SCHEDULES",
    "TTAS",
    "TrainConfig",
    "config_from_dict",
    "small_data_settings",
    "validate_config",
]

DEFAULT_MODEL = "lenet_bn"
RECIPE_NAMES = ("d2l", "fast", "record")  # cnnzoo.train.recipes.RECIPES holds their values
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "muon")
SCHEDULES = ("none", "step", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "bf16-native")
AUGMENTS = ("none", "flip", "altflip", "crop", "flip+crop", "altflip+crop")
TTAS = ("none", "flip", "flip+shift")
INITS = ("default", "xavier")
CHANNELS_LAST = ("auto", "yes", "no")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (all of them fit on one screen, as in nanoGPT)."""

    # what is trained, and from which recipe these values came
    model: str = DEFAULT_MODEL
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    recipe: str = "fast"
    # optimisation
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.1
    optimizer: str = "sgd"  # sgd (plain, as d2l) | momentum (Nesterov) | adam | adamw | muon (cnnzoo.train.optim)
    momentum: float = 0.9  # only for optimizer="momentum" or "muon"
    muon_lr: float = 0.05  # optimizer="muon": the conv filters' peak learning rate (lr is the other parameters')
    weight_decay: float = 0.0  # applied to conv/linear weights only, never to biases or norm layers
    schedule: str = "none"  # none | step | cosine | onecycle; all are stepped per batch
    warmup_epochs: float = 0.0  # linear warm-up in front of none/step/cosine (onecycle has its own)
    step_size: int = 2  # step: decay every this many epochs (as the ResNet-18 StepLR variant)
    gamma: float = 0.9  # step: decay factor (as the ResNet-18 StepLR variant)
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    init: str = "default"  # default (PyTorch's) | xavier (d2l's xavier_uniform_ on weights)
    # start from a trained model's parameters (a run directory, a checkpoint or a weight's name: fine-tuning);
    # the tensors that do not fit (a new head for other classes) keep the init above. None: from scratch
    init_from: str | None = None
    # data
    dataset: str = "fashion-mnist"  # fashion-mnist | mnist | kmnist | cifar10 | folder:PATH (cnnzoo.data.datasets)
    val_fraction: float = 0.1  # folder:PATH without a test/ folder: the share of each class held out as *test*
    # validation images taken out of the training split (cnnzoo.data.hold_out_validation): best.pt and
    # --patience use them, never the test set. None: a tenth of the training images, at most 5,000; 0: none
    val_size: int | None = None
    resize: int | None = None  # square input side; None -> the model's own input size
    augment: str = "none"  # none | flip | altflip | crop | flip+crop | altflip+crop, on the device per batch
    crop_padding: int = 2  # zero padding of the random crop
    tta: str = "none"  # test-time views of the final evaluation: none | flip | flip+shift (cnnzoo.train.loop)
    normalize: bool = True  # subtract the training set's mean, divide by its std (d2l does not)
    eval_batch_size: int = 1024
    # machine
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 autocast on CUDA when supported, else fp32) | fp32 | bf16 | bf16-native
    channels_last: str = "auto"  # auto | yes | no (see cnnzoo.base.devices)
    compile: bool = False
    seed: int = 0
    deterministic: bool = (
        False  # deterministic kernels on CUDA, at a speed cost (cnnzoo.base.devices.enable_determinism)
    )
    target_acc: float | None = None  # stop once test accuracy first reaches this (time to accuracy); None: off
    patience: int | None = None  # early stopping: end after this many epochs without a better validation accuracy
    sync_bn: bool = False  # data parallel on GPUs: SyncBatchNorm over the global batch (cnnzoo.train.distributed)
    tensorboard: bool = False  # also write TensorBoard scalars to <run dir>/tensorboard (extra cnnzoo[tensorboard])
    snapshots: str = "auto"  # epoch snapshots kept: auto | all | none | N >= 2 (cnnzoo.run.snapshots)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for config.json and checkpoints)."""
        return dataclasses.asdict(self)


# Your own folder is not 55,000 images. The fast recipe's batch, learning rate and epochs were chosen for
# Fashion-MNIST's; on a few hundred images they give a handful of huge steps (lenet_bn at lr 0.5, batch 128 on 146
# images: the loss spiked to 8 and the test accuracy ended near chance). Below SMALL_DATA training images a folder's
# run scales them to the data, for every setting the user did not give: the batch to about a twentieth of the
# images (a power of two, 8 to the recipe's), the learning rate with it (linearly for SGD, by the square root for
# Adam, the usual rules), and the epochs up to at least MIN_STEPS steps (at most MAX_SMALL_EPOCHS). Below
# FEW_IMAGES a run warns and suggests fine-tuning a trained network (--init-from).
SMALL_DATA = 5000
MIN_STEPS = 400
MAX_SMALL_EPOCHS = 200
FEW_IMAGES = 300


def small_data_settings(config: TrainConfig, n_train: int, explicit: set[str] | frozenset[str]) -> dict[str, Any]:
    """The settings a run on ``n_train`` training images changes from ``config`` (its recipe's values), leaving
    the ``explicit`` ones (the user's) alone; empty at :data:`SMALL_DATA` images or more."""
    if n_train >= SMALL_DATA or n_train < 1:
        return {}
    out: dict[str, Any] = {}
    batch = config.batch_size
    if "batch_size" not in explicit:
        batch = max(8, min(config.batch_size, 2 ** int(math.log2(max(1, n_train // 20)))))
        out["batch_size"] = batch
        if "lr" not in explicit and batch != config.batch_size:
            ratio = batch / config.batch_size
            out["lr"] = config.lr * (math.sqrt(ratio) if config.optimizer in ("adam", "adamw") else ratio)
    if "epochs" not in explicit:
        steps = math.ceil(n_train / batch)
        out["epochs"] = min(MAX_SMALL_EPOCHS, max(config.epochs, math.ceil(MIN_STEPS / steps)))
    return {k: v for k, v in out.items() if getattr(config, k) != v}


_POSITIVE_INTS = ("epochs", "batch_size", "eval_batch_size", "step_size")
_CHOICES = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "precision": PRECISIONS,
    "augment": AUGMENTS,
    "tta": TTAS,
    "init": INITS,
    "channels_last": CHANNELS_LAST,
}
# (field, test of a valid value, why an invalid one is wrong), checked in this order
_RANGES: tuple[tuple[str, Any, str], ...] = (
    ("lr", lambda v: 0 < v < float("inf"), "the learning rate must be a positive finite number"),
    ("weight_decay", lambda v: v >= 0, "must be >= 0"),
    ("label_smoothing", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("grad_clip", lambda v: v >= 0, "must be >= 0 (0 turns clipping off)"),
    ("target_acc", lambda v: v is None or 0 < v <= 1, "a test accuracy is a fraction in (0, 1], e.g. 0.91"),
    ("momentum", lambda v: 0 <= v < 1, "must be in [0, 1)"),
    ("muon_lr", lambda v: 0 < v < float("inf"), "the learning rate must be a positive finite number"),
    ("gamma", lambda v: 0 < v <= 1, "the step decay factor must be in (0, 1]"),
    ("resize", lambda v: v is None or v >= 1, "must be a positive number of pixels"),
    ("val_fraction", lambda v: 0 < v < 1, "the held-out share must be between 0 and 1, e.g. 0.1"),
    ("val_size", lambda v: v is None or v >= 0, "must be 0 (no validation split) or a number of images, e.g. 5000"),
    ("patience", lambda v: v is None or v >= 1, "must be a positive number of epochs, e.g. 3"),
)


_FLAGS = {"warmup_epochs": "warmup", "resize": "input_size"}  # fields whose flag has another name


def _bad(flag: str, value: Any, why: str) -> ConfigError:
    flag = _FLAGS.get(flag, flag)
    shown = " ".join(str(value).split())  # one line, whatever the value (a hand-edited file may hold anything)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return ConfigError(f"--{flag.replace('_', '-')} {shown}: {why}")


SNAPSHOTS = re.compile(r"auto|all|none|[2-9]|[1-9][0-9]{1,5}")  # --snapshots: a keyword or how many to keep

# Upper bounds: beyond them a value is a typo or an attack, never a training run (and some overflow
# PyTorch: torch.manual_seed takes 64 bits, an lr of 1e308 makes the first step's update infinite).
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 20
MAX_LR = 1e30
MAX_SEED = 2**63 - 1
MAX_SIDE = 4096
_UPPER = {"epochs": MAX_EPOCHS, "batch_size": MAX_BATCH, "eval_batch_size": MAX_BATCH, "step_size": MAX_EPOCHS,
          "patience": MAX_EPOCHS, "val_size": 1 << 31}  # fmt: skip
# the Python type each field holds, from its annotation ("float" fields take ints too)
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "int | None": (int, type(None)),
          "str | None": (str, type(None)),
          "float | None": (int, float, type(None)), "dict[str, Any]": (dict,)}  # fmt: skip


def _check_types(c: TrainConfig) -> None:
    """Every field holds its annotated type (a hand-edited config.json or checkpoint may not), and every
    number is finite."""
    for f in dataclasses.fields(c):
        value = getattr(c, f.name)
        allowed = _TYPES.get(str(f.type))
        if allowed is None:
            continue
        if isinstance(value, bool) and bool not in allowed:
            raise _bad(f.name, repr(value), f"must be {'a whole number' if int in allowed[:1] else 'a number'}")
        if not isinstance(value, allowed):
            want = {"str": "a string", "bool": "true or false", "dict[str, Any]": "a dict"}.get(str(f.type), "a number")
            if str(f.type).startswith("int"):
                want = "a whole number"
            raise _bad(f.name, repr(value), f"must be {want}, not a {type(value).__name__}")
        if isinstance(value, float) and not math.isfinite(value) and f.name != "lr":  # lr: its own message
            raise _bad(f.name, value, "must be a finite number")


def _check_bounds(c: TrainConfig) -> None:
    for name, top in _UPPER.items():
        if getattr(c, name) is not None and getattr(c, name) > top:
            raise _bad(name, getattr(c, name), f"is more than the {top:,} cnnzoo allows: give a smaller value")
    if c.lr > MAX_LR:
        raise _bad("lr", c.lr, f"is above {MAX_LR:g}, where the update overflows float32: give e.g. 0.05")
    if not 0 <= c.seed <= MAX_SEED:
        raise _bad("seed", c.seed, "a seed must be between 0 and 2**63-1: give e.g. --seed 0")
    if c.resize is not None and c.resize > MAX_SIDE:
        raise _bad("input_size", c.resize, f"is more than {MAX_SIDE} pixels: give a smaller --input-size")


def validate_config(config: TrainConfig) -> TrainConfig:
    """Raise :class:`ConfigError` for the first invalid setting; return ``config`` unchanged otherwise."""
    c = config
    _check_types(c)
    for name in _POSITIVE_INTS:
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _bad(name, value, "must be a positive whole number")
    if not _RANGES[0][1](c.lr):
        raise _bad("lr", c.lr, _RANGES[0][2])
    for name, allowed in _CHOICES.items():
        value = getattr(c, name)
        if value not in allowed:
            raise _bad(name, value, f"unknown {name.replace('_', ' ')}; choose one of {', '.join(allowed)}")
    if not _DEVICE_RE.match(str(c.device)):
        raise _bad("device", c.device, "unknown device; choose auto, cpu, cuda, cuda:N or mps")
    for name, ok, why in _RANGES[1:]:
        if not ok(getattr(c, name)):
            raise _bad(name, getattr(c, name), why)
    _check_bounds(c)
    _check_schedule_and_augment(c)
    if c.patience is not None and c.val_size == 0:
        raise ConfigError(
            f"--patience {c.patience} stops on validation accuracy, but --val-size is 0 (no validation split"
            f"{', the d2l recipe' if c.recipe == 'd2l' else ''}): drop --patience or give --val-size 5000"
        )
    if not SNAPSHOTS.fullmatch(c.snapshots):
        raise _bad("snapshots", c.snapshots, "give auto, all, none or how many to keep (2 or more), e.g. 10")
    if not isinstance(c.dataset, str) or not c.dataset.strip():
        raise _bad("dataset", c.dataset, "name a dataset: fashion-mnist, mnist, kmnist, cifar10 or folder:PATH")
    if not isinstance(c.model_kwargs, dict):
        raise ConfigError(f"model_kwargs must be a dict, got {type(c.model_kwargs).__name__}")
    return c


def _check_schedule_and_augment(c: TrainConfig) -> None:
    if c.warmup_epochs < 0 or (c.warmup_epochs and c.warmup_epochs >= c.epochs):
        raise _bad("warmup", c.warmup_epochs, f"warm-up must be >= 0 and shorter than the {c.epochs} epochs")
    if c.schedule == "onecycle" and c.warmup_epochs:
        raise ConfigError("--schedule onecycle has its own warm-up: drop --warmup or pick another schedule")
    if c.crop_padding < 0 or ("crop" in c.augment and c.crop_padding < 1):
        raise _bad("crop_padding", c.crop_padding, "crop augmentation needs a padding of at least 1 pixel")
    side = c.resize if c.resize is not None else 28
    if "crop" in c.augment and c.crop_padding >= side:
        raise _bad("crop_padding", c.crop_padding, f"is not smaller than the {side}x{side} input: give e.g. "
                   "--crop-padding 2")  # fmt: skip


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a :class:`TrainConfig` from :meth:`TrainConfig.to_dict` output (config.json, checkpoints).

    Keys this version does not know are refused rather than silently dropped.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    if "val_size" not in data:  # saved before validation splits existed: the run trained on every training image
        data = {**data, "val_size": 0}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"saved config has settings this cnnzoo does not know: {', '.join(sorted(unknown))}")
    return validate_config(TrainConfig(**dict(data)))
