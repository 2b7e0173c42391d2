"""The recipes, as plain data, and :func:`resolve_config`, which turns a model name, a recipe and the user's flags
into a validated :class:`~cnnzoo.train.config.TrainConfig`.

:func:`resolve_config` builds one in three layers, later layers winning: the dataclass defaults, then a *recipe*
(common values plus per-model values), then the explicit overrides (the CLI passes only the flags the user actually
typed). It checks the model name and input size against the registry, so this module imports the models (torch);
the settings themselves and their checks are in :mod:`cnnzoo.train.config`, which the CLI's parser reads without
torch.

Recipes
-------
``d2l`` reproduces the book's ``train_ch6`` set-up for each network it trains, exactly: 10 epochs, plain
SGD without weight decay, Xavier-uniform initialisation of conv/linear weights, cross-entropy, pixels
scaled to [0, 1] without normalisation, no augmentation, and the per-model learning rate, batch size
and input size the book uses. Only the measurement differs: images/s counts data preparation too (the
book's timer stopped around it), and the numbers are accumulated on the device.

``fast`` (the default) is the project's best-known set-up per model, found by measurement; the README
records the accuracy and wall time each reaches and the machine it was measured on.

``record`` is the Fashion-MNIST speed record's set-up on two CPU cores, for the two networks designed for it:
``speednet`` (the 60-second target) and ``speednet_wide`` (the 5-minute one); benchmarks/speedrun.md has the
figures and benchmarks/speedrun/notes.md how each setting was chosen on the validation split.

A d2l reader's ResNet-18 variant (Adam and StepLR, batch 256, 96x96, PyTorch's init) is
``cnnzoo train resnet18 --recipe d2l --optimizer adam --lr 0.001 --schedule step --init default``: the
step schedule's defaults (``step_size=2`` epochs, ``gamma=0.9``) are that notebook's. Unlike the
notebook, which calls ``scheduler.step(epoch)`` and so decays one epoch late, the decay here happens
after every ``step_size`` completed epochs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cnnzoo.base.errors import ConfigError
from cnnzoo.models.registry import check_input_size, get_model_info, list_models
from cnnzoo.train.config import RECIPE_NAMES, TrainConfig, validate_config

__all__ = ["RECIPES", "d2l_models", "recipe_values", "resolve_config"]


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

# The set-up of each network the book trains, from its train_ch6 calls: each model registers its own
# (``book_training`` beside its builder in cnnzoo/models/).
_D2L_MODELS: dict[str, dict[str, Any]] = {
    name: {"lr": book.lr, "batch_size": book.batch_size, "resize": book.input_size}
    for name in list_models()
    if (book := get_model_info(name).book_training) is not None
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


# The speed record (benchmarks/speedrun.md): every value chosen on the 5,000 validation images with
# benchmarks/speedrun/lab.py (benchmarks/speedrun/notes.md, "The record's technique table"), the epochs then set
# by the time budget. Alternating flips pay off from about 10 epochs on (speednet, 12 epochs, validation: 0.9292
# without flips, 0.9322 with, 0.9346 with the mirror averaged in at test time; at 7 epochs they did not), a 1-pixel
# shift from about 30 (speednet_wide, 30 epochs: 0.9414 -> 0.9438 with the 6-view test). Then airbench's frozen
# patch-whitening first layer (speednet whiten=True) and Muon for the conv filters (lr 0.05 beside Nesterov's 0.3),
# each +0.3 to +0.5 points at 12 epochs, together 0.9396 / 0.9402 over two seeds against 0.9346 / 0.9328, and with a
# ReLU after the whitening and no whitening bias 0.9452 / 0.9470. They cost about 40 % more time per epoch (Muon's
# Newton-Schulz iterations, the stem reading 8 channels), so speednet's 60 seconds hold 8 epochs instead of 11 and
# speednet_wide's 5 minutes 24 instead of 32 (26 took 269 and 300 s on the record's first two seeds: too close).
_RECORD_COMMON: dict[str, Any] = {
    "model_kwargs": {"whiten": True},
    "optimizer": "muon",
    "muon_lr": 0.05,
    "lr": 0.3,
    "batch_size": 256,
    **_CPU_CONVS,
}
_RECORD_MODELS: dict[str, dict[str, Any]] = {
    "speednet": {"epochs": 8, **_RECORD_COMMON, "augment": "altflip", "tta": "flip"},
    "speednet_wide": {
        "epochs": 24,
        **_RECORD_COMMON,
        "augment": "altflip+crop",
        "crop_padding": 1,
        "tta": "flip+shift",
    },
}

RECIPES: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {
    "d2l": (_D2L_COMMON, _D2L_MODELS),
    "fast": (_FAST_COMMON, _FAST_MODELS),
    "record": (_FAST_COMMON, _RECORD_MODELS),
}
assert tuple(RECIPES) == RECIPE_NAMES  # the parser's choices (cnnzoo.train.config, without torch)


def recipe_values(recipe: str, model: str) -> dict[str, Any]:
    """The settings ``recipe`` gives ``model`` (common values updated with the model's own)."""
    if recipe not in RECIPES:
        raise ConfigError(f"unknown recipe {recipe!r}: choose one of {', '.join(RECIPES)}")
    common, per_model = RECIPES[recipe]
    if recipe == "record" and model not in per_model:
        raise ConfigError(
            f"the record recipe is the speed record's set-up for {' and '.join(sorted(per_model))} only, not "
            f"{model!r}: use --recipe fast"
        )
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
    kwargs = {**values.get("model_kwargs", {}), **overrides.get("model_kwargs", {})}  # the user's win, key by key
    values.update(overrides)
    if kwargs:
        values["model_kwargs"] = kwargs
    _check_conflicts(overrides, values)
    values["model"] = model_name
    values["recipe"] = recipe
    values["resize"] = check_input_size(model_name, values.get("resize"), values.get("model_kwargs"))
    return validate_config(TrainConfig(**values))


def _check_conflicts(overrides: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Flags that only make sense together with a setting the run does not have."""
    opt = values.get("optimizer", TrainConfig.optimizer)
    if "momentum" in overrides and opt not in ("momentum", "muon"):
        raise ConfigError(f"--momentum applies to --optimizer momentum or muon only, not {opt!r}: drop one of them")
    if "muon_lr" in overrides and opt != "muon":
        raise ConfigError(f"--muon-lr applies to --optimizer muon only, not {opt!r}: drop one of them")
    schedule = values.get("schedule", TrainConfig.schedule)
    for flag in ("step_size", "gamma"):
        if flag in overrides and schedule != "step":
            raise ConfigError(f"--{flag.replace('_', '-')} applies to --schedule step only, not {schedule!r}")
    if "crop_padding" in overrides and "crop" not in values.get("augment", TrainConfig.augment):
        raise ConfigError("--crop-padding needs --augment crop or flip+crop")


def d2l_models() -> list[str]:
    """The networks the book trains, which the ``d2l`` recipe has a set-up for."""
    return sorted(_D2L_MODELS)
