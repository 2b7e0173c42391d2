"""Training configuration: one dataclass with every hyperparameter, and the recipes as plain data.

A run is fully described by a :class:`TrainConfig`. :func:`resolve_config` builds one in three layers,
later layers winning: the dataclass defaults, then a *recipe* (common values plus per-model values),
then the explicit overrides (the CLI passes only the flags the user actually typed). Validation happens
once, here, and raises :class:`~cnnzoo.errors.ConfigError` with a one-line message naming the setting.

Recipes
-------
``d2l`` reproduces the book's ``train_ch6`` set-up for each network it trains, exactly: 10 epochs, plain
SGD without weight decay, Xavier-uniform initialisation of conv/linear weights, cross-entropy, pixels
scaled to [0, 1] without normalisation, no augmentation, and the per-model learning rate, batch size
and input size the book uses. Only the measurement differs: images/s counts data preparation too (the
book's timer stopped around it), and the numbers are accumulated on the device.

``fast`` (the default) is the project's best-known set-up per model, found by measurement; the README
records the accuracy and wall time each reaches and the machine it was measured on.

A d2l reader's ResNet-18 variant (Adam and StepLR, batch 256, 96x96, PyTorch's init) is
``cnnzoo train resnet18 --recipe d2l --optimizer adam --lr 0.001 --schedule step --init default``: the
step schedule's defaults (``step_size=2`` epochs, ``gamma=0.9``) are that notebook's. Unlike the
notebook, which calls ``scheduler.step(epoch)`` and so decays one epoch late, the decay here happens
after every ``step_size`` completed epochs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnzoo.errors import ConfigError

__all__ = [
    "AUGMENTS",
    "DEFAULT_MODEL",
    "OPTIMIZERS",
    "PRECISIONS",
    "RECIPES",
    "SCHEDULES",
    "TrainConfig",
    "config_from_dict",
    "d2l_models",
    "recipe_values",
    "resolve_config",
    "small_data_settings",
    "validate_config",
]

DEFAULT_MODEL = "lenet_bn"
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = ("none", "step", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "bf16-native")
AUGMENTS = ("none", "flip", "crop", "flip+crop")
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
    optimizer: str = "sgd"  # sgd (plain, as d2l) | momentum (Nesterov) | adam | adamw
    momentum: float = 0.9  # only for optimizer="momentum"
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
    augment: str = "none"  # none | flip | crop | flip+crop, done on the device per batch
    crop_padding: int = 2  # zero padding of the random crop
    normalize: bool = True  # subtract the training set's mean, divide by its std (d2l does not)
    eval_batch_size: int = 1024
    # machine
    device: str = "auto"  # auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto (bf16 autocast on CUDA when supported, else fp32) | fp32 | bf16 | bf16-native
    channels_last: str = "auto"  # auto | yes | no (see cnnzoo.devices)
    compile: bool = False
    seed: int = 0
    deterministic: bool = False  # deterministic kernels on CUDA, at a speed cost (cnnzoo.devices.enable_determinism)
    target_acc: float | None = None  # stop once test accuracy first reaches this (time to accuracy); None: off
    patience: int | None = None  # early stopping: end after this many epochs without a better validation accuracy
    sync_bn: bool = False  # data parallel on GPUs: SyncBatchNorm over the global batch (cnnzoo.distributed)
    tensorboard: bool = False  # also write TensorBoard scalars to <run dir>/tensorboard (extra cnnzoo[tensorboard])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data (for config.json and checkpoints)."""
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------
# recipes: common values, then per-model values. Keys are registry names.
# ------------------------------------------------------------------------------------------------
_D2L_COMMON: dict[str, Any] = {
    "epochs": 10,
    "optimizer": "sgd",
    "weight_decay": 0.0,
    "schedule": "none",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "grad_clip": 0.0,
    "init": "xavier",
    "augment": "none",
    "normalize": False,  # d2l uses ToTensor() only
    "val_size": 0,  # the book trains on all 60,000 training images and tests every epoch
}

# (lr, batch size, input size) of each network the book trains, from its train_ch6 calls. The book's
# batch-norm section trains its hand-written BatchNorm LeNet (lenet_bn_scratch) with lr 1.0 and batch 256,
# then the same network on nn.BatchNorm (lenet_bn) with the same values; its printed 0.830 is the first run.
_D2L_MODELS: dict[str, dict[str, Any]] = {
    "lenet": {"lr": 0.9, "batch_size": 256, "resize": 28},
    "alexnet": {"lr": 0.01, "batch_size": 128, "resize": 224},
    "vgg11_small": {"lr": 0.05, "batch_size": 128, "resize": 224},
    "nin": {"lr": 0.1, "batch_size": 128, "resize": 224},
    "googlenet": {"lr": 0.1, "batch_size": 128, "resize": 96},
    "lenet_bn": {"lr": 1.0, "batch_size": 256, "resize": 28},
    "lenet_bn_scratch": {"lr": 1.0, "batch_size": 256, "resize": 28},
    "resnet18": {"lr": 0.05, "batch_size": 256, "resize": 96},
    "densenet": {"lr": 0.1, "batch_size": 256, "resize": 96},
}

# The fast recipe's common values: Nesterov momentum with a one-cycle schedule, light label smoothing
# and weight decay, and flip + 2-pixel crop augmentation, with normalised inputs. Per-model entries
# below hold the set-ups measured on Fashion-MNIST (the README's table gives accuracy and time); a model
# without an entry gets the common values, a sound starting point for the BatchNorm networks (every network
# without BatchNorm has an entry: the common values left most of them at chance).
_FAST_COMMON: dict[str, Any] = {
    "epochs": 10,
    "optimizer": "momentum",
    "momentum": 0.9,
    "lr": 0.05,
    "batch_size": 128,
    "weight_decay": 5e-4,
    "schedule": "onecycle",
    "label_smoothing": 0.1,
    "init": "default",
    "augment": "flip+crop",
    "crop_padding": 2,
    "normalize": True,
}

_NO_BATCHNORM: dict[str, Any] = {"optimizer": "adamw", "lr": 0.001, "weight_decay": 0.05, "init": "xavier"}

# Networks whose convolutions dominate a CPU step: bf16 where the hardware computes it (else fp32) and NHWC.
_CPU_CONVS = {"precision": "bf16-native", "channels_last": "yes"}

_FAST_MODELS: dict[str, dict[str, Any]] = {
    # Measured on the 2-core reference CPU (README): 12 epochs in about a minute. The sigmoid network wants
    # a large step (d2l uses 1.0). Re-checked on the validation split (benchmarks/recipes/recheck.md), last-epoch
    # validation accuracy at lr 0.25 / 0.5 / 1.0: 0.9134 / 0.9146 / 0.9156 with one thread, but 0.9120 at 1.0 with
    # two: 1.0 is no better beyond noise and less steady, so 0.5 stays. Augmentation does not pay for itself in
    # 12 epochs of a 45k-parameter network (flip: +/-0 accuracy; random crop halves CPU throughput), so it is off.
    "lenet_bn": {"epochs": 12, "lr": 0.5, "augment": "none"},
    # Without BatchNorm the sigmoid LeNet trains far better with AdamW than with SGD of any step size
    # tried (0.898 vs 0.868 after 12 epochs at lr 0.5). On validation, AdamW at lr 0.005 / 0.01 / 0.02 / 0.04:
    # 0.8858 / 0.9044 / 0.9132 / 0.9146, so 0.04.
    "lenet": {"epochs": 12, "optimizer": "adamw", "lr": 0.04, "weight_decay": 0.05, "augment": "none"},
    # cnnzoo's own CPU speedrun networks (cnnzoo/models/speednet.py), chosen on the validation split
    # (benchmarks/speedrun/notes.md): in fp32 NCHW 5 epochs reach 0.925 validation accuracy (0.927 at 6); lr 0.1
    # to 0.3 moved it by 0.002 only. bf16 (where the CPU has bf16 units) + channels_last + batch 256 train 1.6x
    # faster (8.4k against 5.3k img/s, fp32 NCHW 3.8k) and reach 0.928 at 6 epochs, 0.927 at 7, 0.929 at 8.
    # Flips cost speednet 0.003 at 8 epochs (0.926 against 0.929), and test-time flip averaging 0.004.
    # The wide one reaches 0.931 in 8 epochs with flips (cheap, unlike random crops) in fp32; in bf16 at batch 256
    # 0.934 in 14 epochs, which fit the 4-minute budget there.
    "speednet": {"epochs": 7, "lr": 0.3, "batch_size": 256, "augment": "none", **_CPU_CONVS},
    "speednet_wide": {"epochs": 14, "lr": 0.3, "batch_size": 256, "augment": "flip", **_CPU_CONVS},
    # GoogLeNet has no BatchNorm: with the common values (PyTorch's init, momentum) it stayed at chance (0.100)
    # for 3 full epochs at 32x32 (benchmarks/leaderboard.md). On 12k images x 2 epochs at 32x32, test accuracy:
    # common values 0.10; Xavier + momentum lr 0.05 0.20, lr 0.1 0.10; AdamW lr 0.001 0.58; Xavier + AdamW
    # lr 0.002 0.73, lr 0.004 0.38. d2l also uses Xavier, and needs many epochs to leave the plateau.
    "googlenet": {"optimizer": "adamw", "lr": 0.002, "weight_decay": 0.05, "init": "xavier"},
    # The other networks without BatchNorm. 2-epoch probes on the first 8,192 training images (VGG: 4,096) and
    # 2,000 test images, seed 0 (benchmarks/cpu-2core-xeon.md), test accuracy after epoch 2 -- common values:
    # NiN@96 0.107, VGG-small@224 0.102 (both at chance), AlexNet@193 0.666; Xavier + AdamW lr 0.001: NiN 0.521,
    # VGG-small 0.683, AlexNet 0.782. NiN at lr 0.002: 0.199; momentum lr 0.01: 0.100. vgg11 (8 GMACs per image,
    # 4 img/s on the CPU) was not probed: it is vgg11_small with 4x wider convolutions and gets the same set-up.
    "alexnet": _NO_BATCHNORM,
    "nin": _NO_BATCHNORM,
    "vgg11_small": _NO_BATCHNORM,
    "vgg11": _NO_BATCHNORM,
}

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


RECIPES: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {
    "d2l": (_D2L_COMMON, _D2L_MODELS),
    "fast": (_FAST_COMMON, _FAST_MODELS),
}


def recipe_values(recipe: str, model: str) -> dict[str, Any]:
    """The settings ``recipe`` gives ``model`` (common values updated with the model's own)."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    common, per_model = RECIPES[recipe]
    if recipe == "d2l" and model not in per_model:
        raise ConfigError(
            f"the book does not train {model!r}, so the d2l recipe has no set-up for it (it has "
            f"{', '.join(sorted(per_model))}): use --recipe fast or give --lr and --batch-size"
        )
    return {**common, **per_model.get(model, {})}


def resolve_config(model_name: str, recipe: str = "fast", overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """The validated config for ``model_name``: defaults, then ``recipe``, then ``overrides``.

    ``overrides`` holds only the settings the user chose explicitly (``None`` values are ignored, so a
    CLI can pass its whole namespace of optional flags). Unknown keys are a bug and raise ``TypeError``.
    """
    # The registry (and so torch) is imported here, not at the top: the CLI's parser reads this module's choices,
    # and `cnnzoo --help` must not wait for torch.
    from cnnzoo.registry import check_input_size, get_model_info

    get_model_info(model_name)  # UnknownModelError names close matches
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
    try:
        values = recipe_values(recipe, model_name)
    except ConfigError:
        # A model without a d2l entry still trains with d2l's common settings when the user says
        # which learning rate and batch size to use.
        if recipe == "d2l" and {"lr", "batch_size"} <= set(overrides):
            values = dict(_D2L_COMMON)
        else:
            raise
    values.update(overrides)
    _check_conflicts(overrides, values)
    values["model"] = model_name
    values["recipe"] = recipe
    values["resize"] = check_input_size(model_name, values.get("resize"), values.get("model_kwargs"))
    return validate_config(TrainConfig(**values))


def _check_conflicts(overrides: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Flags that only make sense together with a setting the run does not have."""
    opt = values.get("optimizer", TrainConfig.optimizer)
    if "momentum" in overrides and opt != "momentum":
        raise ConfigError(f"--momentum applies to --optimizer momentum only, not {opt!r}: drop one of them")
    schedule = values.get("schedule", TrainConfig.schedule)
    for flag in ("step_size", "gamma"):
        if flag in overrides and schedule != "step":
            raise ConfigError(f"--{flag.replace('_', '-')} applies to --schedule step only, not {schedule!r}")
    if "crop_padding" in overrides and "crop" not in values.get("augment", TrainConfig.augment):
        raise ConfigError("--crop-padding needs --augment crop or flip+crop")


_POSITIVE_INTS = ("epochs", "batch_size", "eval_batch_size", "step_size")
_CHOICES = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "precision": PRECISIONS,
    "augment": AUGMENTS,
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


def d2l_models() -> list[str]:
    """The networks the book trains, which the ``d2l`` recipe has a set-up for."""
    return sorted(_D2L_MODELS)


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
