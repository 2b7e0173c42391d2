"""Building a run: "this model, this recipe, these overrides, this dataset" (or "resume this run") made into
a final config, a model and the data.

Every front end (``cnnzoo train``, ``cnnzoo leaderboard``, the notebooks, a web app) comes through here, so
the rules live once:

* a **model spec** (``resnet18:small_input@28``) gives the registry name, its keyword arguments and
  optionally the input side, which must agree with an explicit ``resize``;
* a model trained on another dataset than Fashion-MNIST takes the data's channels and classes, and says so
  in ``config.model_kwargs``, so ``eval``/``predict``/``export`` rebuild the same network from the
  checkpoint; the config is final when it is made and never patched afterwards;
* the data a config names is loaded the same way for a fresh run, a resumed one and an evaluation (a
  folder is decoded at the run's input size and split with the run's seed);
* only a few settings may change when a run is resumed (:data:`RESUMABLE`), and a finished run is not
  trained again by accident.

No argparse, no printing: errors are :class:`~cnnzoo.base.errors.ConfigError` with one-line messages.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import cnnzoo.data as data_mod
from cnnzoo.base.errors import ArgumentTypeError, CheckpointError, ConfigError
from cnnzoo.base.rundirs import check_unlocked, resolve_run_dir
from cnnzoo.data.dataset import ImageDataset, auto_validation_size
from cnnzoo.models.registry import ModelSpec, create_model, meta_model, parse_model_spec
from cnnzoo.run.sources import init_from_trained, load_trained
from cnnzoo.run.training import Run
from cnnzoo.train.checkpoint import load_checkpoint, model_from_checkpoint
from cnnzoo.train.config import (
    DEFAULT_MODEL,
    FEW_IMAGES,
    TrainConfig,
    config_from_dict,
    small_data_settings,
    validate_config,
)
from cnnzoo.train.history import patience_reached, time_to_target
from cnnzoo.train.optim import xavier_init
from cnnzoo.train.recipes import resolve_config
from cnnzoo.weights import list_weights

__all__ = [
    "RESUMABLE",
    "Run",
    "build_model",
    "load_data",
    "make_config",
    "new_run",
    "open_run",
    "resume_run",
    "with_validation",
]

# Settings whose value may change when a run is resumed; everything else belongs to the run.
RESUMABLE = (
    "epochs",
    "device",
    "precision",
    "compile",
    "channels_last",
    "target_acc",
    "patience",
    "sync_bn",
    "tensorboard",
    "snapshots",
)


def load_data(
    config: TrainConfig,
    root: str | os.PathLike[str] | None = None,
    *,
    in_channels: int | None = None,
    validation: bool = True,
):
    """The dataset ``config`` names, as a training run or an evaluation of its checkpoint sees it.

    Folders are decoded at the run's input size and split with the run's seed and ``val_fraction``, so
    ``cnnzoo eval`` rebuilds exactly the test split the run was tested on. ``in_channels`` None keeps the
    dataset's own (a fresh run builds its model to match); a checkpoint passes the channels it was trained on.
    ``validation``: take the validation split out (:func:`with_validation`); :func:`new_run` does that itself,
    once, with its final config.
    """
    if root is not None and not str(root).strip():  # Path("") is the working directory: an unset variable
        raise ConfigError("--data-root is empty (an unset variable?): give the directory with the dataset's files")
    # data_mod.* is looked up at call time, so tests can substitute tiny data
    if data_mod.dataset_name(config.dataset) == "fashion-mnist" and in_channels in (None, 1):
        data = data_mod.load_fashion_mnist(root)
    else:
        data = data_mod.load_dataset(
            config.dataset,
            root=root,
            image_size=config.resize,
            in_channels=in_channels,
            seed=config.seed,
            val_fraction=config.val_fraction,
        )
    return with_validation(data, config) if validation else data


def with_validation(data: ImageDataset, config: TrainConfig) -> ImageDataset:
    """``data`` with the validation split ``config.val_size`` asks for taken out of its training images
    (:func:`cnnzoo.data.hold_out_validation`: stratified, the same images for every run and seed). Data that
    already have their validation split (say from :func:`load_data`) are returned as they are."""
    if data.val_labels is not None:
        return data
    n_train = int(data.train_labels.numel())
    if config.val_size is not None and config.val_size >= n_train:
        raise ConfigError(
            f"--val-size {config.val_size} is not smaller than the {n_train:,} training images of {data.name}: "
            f"give e.g. --val-size {n_train // 10}, or 0 for no validation split"
        )
    data = data_mod.hold_out_validation(data, config.val_size)
    if config.patience is not None and not data.has_validation:
        raise ConfigError(
            f"--patience needs validation images, and {data.name} has too few training images to hold "
            "any out: drop --patience, or add images"
        )
    return data


def _spec_overrides(spec: ModelSpec, overrides: Mapping[str, Any], text: str) -> dict[str, Any]:
    """``overrides`` with the spec's side (as ``resize``) and keyword arguments (as ``model_kwargs``)."""
    out = {k: v for k, v in overrides.items() if v is not None}
    if spec.input_size is not None:
        if out.get("resize", spec.input_size) != spec.input_size:
            raise ConfigError(f"{text} and --input-size {out['resize']} disagree: give the side once")
        out["resize"] = spec.input_size
    if spec.kwargs:
        meta_model(spec.name, spec.kwargs)  # an unknown keyword fails here, naming the ones it takes
        out["model_kwargs"] = {**out.get("model_kwargs", {}), **spec.kwargs}
    return out


def make_config(
    spec: str | ModelSpec = DEFAULT_MODEL,
    *,
    recipe: str = "fast",
    overrides: Mapping[str, Any] | None = None,
    data: ImageDataset | None = None,
) -> TrainConfig:
    """The final, validated config of a new run of ``spec`` with ``recipe`` and ``overrides`` on ``data``.

    ``data`` of another dataset than Fashion-MNIST (by the config's ``dataset``, or by its shape) puts its
    channels and classes into ``model_kwargs``, so the network is built for them; ``None`` means
    Fashion-MNIST's one channel and ten classes, or that the data are not loaded yet (see :func:`new_run`).
    """
    _check_arguments(spec, recipe, overrides, data)
    text = spec if isinstance(spec, str) else spec.label
    spec = parse_model_spec(spec) if isinstance(spec, str) else spec
    values = _spec_overrides(spec, overrides or {}, text)
    other = data_mod.dataset_name(values.get("dataset", TrainConfig.dataset)) != "fashion-mnist"
    if data is not None and (other or (data.in_channels, data.num_classes) != (1, 10)):
        values["model_kwargs"] = {
            "in_channels": data.in_channels,
            "num_classes": data.num_classes,
            **values.get("model_kwargs", {}),
        }
    return resolve_config(spec.name, recipe, values)


def _check_arguments(spec: Any, recipe: Any, overrides: Any, data: Any) -> None:
    """The Python API's arguments, each named with its fix before anything deeper meets it."""
    if not isinstance(spec, str | ModelSpec):
        raise ArgumentTypeError(f"the model must be a name such as 'lenet_bn' or 'resnet18@32' (see "
                                f"cnnzoo.list_models()), not {spec!r:.60}")  # fmt: skip
    if not isinstance(recipe, str):
        raise ArgumentTypeError(f"recipe must be 'fast', 'd2l' or 'record', not {recipe!r:.60}")
    if overrides is not None and not (isinstance(overrides, Mapping) and all(isinstance(k, str) for k in overrides)):
        raise ArgumentTypeError(f"overrides must be a dict of config fields such as {{'epochs': 5}}, not "
                                f"{overrides!r:.60}")  # fmt: skip
    if data is not None and not isinstance(data, ImageDataset):
        raise ArgumentTypeError(f"data must be a dataset from cnnzoo.load_fashion_mnist() or cnnzoo.load_dataset(), "
                                f"not {type(data).__name__}")  # fmt: skip


def build_model(config: TrainConfig) -> nn.Module:
    """A freshly initialised model for ``config``: PyTorch's init under ``config.seed`` (:func:`cnnzoo.fit`
    seeds again before training, and applies the recipe's init)."""
    torch.manual_seed(config.seed)
    return create_model(config.model, **config.model_kwargs)


def new_run(
    spec: str | ModelSpec = DEFAULT_MODEL,
    *,
    recipe: str = "fast",
    overrides: Mapping[str, Any] | None = None,
    data: ImageDataset | None = None,
    data_root: str | os.PathLike[str] | None = None,
) -> Run:
    """A new run of ``spec``: config, model and data (``data`` given, or loaded as the config names it)."""
    if data is None:
        # The data's location, input size and split seed come from the config; its channels and classes
        # then decide the network, so the final config is made once the data are there.
        # (its validation split is taken once, below, with the final config)
        data = load_data(make_config(spec, recipe=recipe, overrides=overrides), data_root, validation=False)
    config = make_config(spec, recipe=recipe, overrides=overrides, data=data)
    config, notes = _scale_to_folder(config, data, spec, recipe, overrides)
    model = build_model(config)
    report = None
    if config.init_from is not None:  # fine-tuning: the recipe's init first, so the new head has it too
        if config.init == "xavier":
            xavier_init(model)
        report = init_from_trained(model, config.init_from)
    return Run(config, model, with_validation(data, config), init=report, notes=notes)


def _scale_to_folder(
    config: TrainConfig, data: ImageDataset, spec, recipe: str, overrides
) -> tuple[TrainConfig, list[str]]:
    """A folder's run with the fast recipe, on fewer than :data:`~cnnzoo.train.config.SMALL_DATA` images: the recipe
    scaled to them (:func:`~cnnzoo.train.config.small_data_settings`), and what to say about it."""
    if recipe != "fast" or not config.dataset.startswith("folder:"):
        return config, []
    n_train = int(data.train_labels.numel())
    if data.val_labels is None:  # the validation images are not taken out yet: they will not train
        n_train -= config.val_size if config.val_size is not None else auto_validation_size(n_train)
    explicit = {k for k, v in (overrides or {}).items() if v is not None}
    changes = small_data_settings(config, n_train, explicit)
    notes = []
    if changes:
        config = make_config(spec, recipe=recipe, overrides={**(overrides or {}), **changes}, data=data)
        shown = ", ".join(f"{k.replace('_', ' ')} {v:g}" if isinstance(v, float) else f"{k.replace('_', ' ')} {v}"
                          for k, v in changes.items())  # fmt: skip
        notes.append(f"the fast recipe scaled to {n_train} training images: {shown} (give --batch-size, --lr or "
                     "--epochs to choose them)")  # fmt: skip
    if n_train < FEW_IMAGES and config.init_from is None:
        trained = [w.name for w in list_weights(config.model)]
        start = f"--init-from {trained[0]}" if trained else "--init-from with one of your runs of this model"
        notes.append(f"warning: only {n_train} training images: a network trained from scratch on so few often "
                     f"learns little; fine-tuning a trained one usually does better: {start}")  # fmt: skip
    return config, notes


def resume_run(
    run_dir: str | os.PathLike[str],
    *,
    overrides: Mapping[str, Any] | None = None,
    model: str | None = None,
    data: ImageDataset | None = None,
    data_root: str | os.PathLike[str] | None = None,
) -> Run:
    """The run in ``run_dir`` (or the run a checkpoint file belongs to), ready to continue from its last
    checkpoint, with the :data:`RESUMABLE` settings in ``overrides`` changed. A run another live process is
    training is refused (:class:`~cnnzoo.base.errors.RunLockedError`).

    ``model`` (a spec), when given, must name the run's model. A run that finished its epochs, or reached
    its ``target_acc``, is refused unless ``overrides`` raise the number of epochs or the target.
    """
    directory, ckpt_path = resolve_run_dir(run_dir)
    check_unlocked(directory)  # fails fast; start_training takes the lock itself
    ckpt = load_checkpoint(ckpt_path)
    saved = config_from_dict(ckpt["config"])
    if model and parse_model_spec(model).name != saved.model:
        raise ConfigError(f"{directory} trained {saved.model}, not {model}: drop MODEL when resuming")
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    fixed = sorted(k for k in overrides if k not in RESUMABLE)
    if fixed:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in fixed)
        raise ConfigError(
            f"{flags} cannot change when resuming {directory} (only --epochs, --device, --precision, "
            "--channels-last, --compile, --target-acc, --patience, --sync-bn can): start a new run instead"
        )
    config = validate_config(dataclasses.replace(saved, **overrides))
    done = ckpt["train"]["epoch"]
    if config.epochs < done:  # config.json would say fewer epochs than the run holds
        raise ConfigError(f"--epochs {config.epochs} is fewer than the {done} epochs {directory} has done: give "
                          f"--epochs {done} or more (the total, not the number to add)")  # fmt: skip
    _check_unfinished(directory, config, ckpt["train"])
    if data is None:
        data = load_data(config, data_root, in_channels=ckpt["preprocess"]["in_channels"])
    data = with_validation(data, config)
    return Run(config, model_from_checkpoint(ckpt), data, ckpt["train"], directory, ckpt_path)


def open_run(
    path: str | os.PathLike[str],
    *,
    device: str | None = None,
    data_root: str | os.PathLike[str] | None = None,
) -> Run:
    """The trained run a checkpoint holds (a run directory means its last.pt; a weight's name, that weight:
    ``directory`` is then None), with the data it was trained on, to evaluate or inspect: ``device`` replaces
    the run's device."""
    directory, ckpt = load_trained(path)
    ckpt_path = Path(ckpt["path"])
    config = config_from_dict(ckpt["config"])
    if "weight" in ckpt:  # a published weight is evaluated as its card was: fp32 on the CPU, the same everywhere
        config = dataclasses.replace(config, device="cpu", precision="fp32", channels_last="no", compile=False)
    if device is not None:
        config = validate_config(dataclasses.replace(config, device=device))
    data = load_data(config, data_root, in_channels=ckpt["preprocess"]["in_channels"])
    classes = ckpt["preprocess"]["classes"]
    if list(data.classes) != list(classes):
        raise CheckpointError(f"{ckpt_path}: trained on classes {classes}, but the dataset has {data.classes}")
    return Run(config, model_from_checkpoint(ckpt), data, ckpt["train"], directory, ckpt_path)


def _check_unfinished(directory: Path, config: TrainConfig, train: Mapping[str, Any]) -> None:
    # A run killed after its last epoch but before its report resumes to write the report.
    if not (directory / "report.md").exists():
        return
    done = train["epoch"]
    if done >= config.epochs:
        raise ConfigError(
            f"{directory} already finished {done} of {config.epochs} epochs: pass --epochs {done + 5} to train further"
        )
    if patience_reached(train["history"], config.patience):
        raise ConfigError(
            f"{directory} stopped early at epoch {done}: {config.patience} epochs without a better validation "
            f"accuracy: pass a higher --patience to train further"
        )
    hit = time_to_target(train["history"], config.target_acc) if config.target_acc else None
    if hit is not None:
        raise ConfigError(
            f"{directory} reached --target-acc {config.target_acc:g} at epoch {hit['epoch']} "
            f"(test acc {hit['test_acc']:.4f}) and stopped there: pass a higher --target-acc to train further"
        )
