"""The leaderboard: every chosen network trained the same way, over several seeds, in one table.

``cnnzoo leaderboard`` answers *which of the chapter's networks is worth its cost on this machine*: each
model is trained with one recipe and one budget over several seeds, and its row holds input size,
parameters, MACs, epochs, test accuracy (mean ± sample std over the seeds, and the best seed), training
time, images/s and the device. Beside it stand two reference figures that are **not ours**: what the
seed notes printed for that network (with their set-up), and the best figure the public Fashion-MNIST
benchmark table lists for an architecture of that family (:data:`PUBLIC_FIGURES`).

Measurement, as :func:`cnnzoo.fit` does it: a row's test accuracy is each seed's *last* epoch (no
picking the best epoch on the test set); training time is the training epochs' wall time, data
preparation included and evaluation excluded; images/s is training images over that time. Before a
model's runs, a probe of a few steps on a throw-away copy (:func:`estimate_epoch_seconds`) warms the
device up, so the first seed does not pay one-time costs the others do not, and estimates the time.

**Budget.** ``budget_seconds`` caps each run's wall time (training and evaluation). Stopping a run
half-way would leave the one-cycle schedule at its peak learning rate and report an unconverged network,
so the budget picks the *number of epochs* instead: from the probe's estimate (its steps are not
counted), the run gets as many whole epochs as fit in the budget (at least one, at most the recipe's
or ``--epochs``), with its schedule laid over them. Should the probe have been optimistic, a safety net
stops the run at the end of an epoch once the next one would end more than 25 % past the budget
(``fit``'s ``should_stop``); the row then says so.

**Files.** :func:`update_leaderboard` merges rows into ``leaderboard.json`` (the source of truth) and
rewrites ``leaderboard.md`` and ``leaderboard.png`` from all of its rows, so CPU rows and GPU rows
measured later, elsewhere, sit side by side. A row is keyed by model (with its keyword arguments), input
size, recipe, dataset and device; a rerun replaces the row with the same key. Every row carries its own
provenance (command, date, machine, torch version, device).

**Model specs.** ``NAME[:KWARG[=VALUE][,KWARG...]][@SIDE]``: ``resnet18:small_input`` builds
``create_model("resnet18", small_input=True)``; ``googlenet@32`` trains GoogLeNet at 32x32.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.config import TrainConfig, resolve_config, validate_config
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.devices import DeviceSetup, free_device_memory, setup_device
from cnnzoo.engine import (
    Callback,
    TrainState,
    build_optimizer,
    build_scheduler,
    evaluate_batches,
    fit,
    make_batches,
    train_one_epoch,
)
from cnnzoo.errors import ConfigError
from cnnzoo.progress import default_callbacks
from cnnzoo.registry import ModelSpec, create_model, get_model_info, meta_model, parse_model_spec
from cnnzoo.run import environment_info

__all__ = [
    "DEFAULT_MODELS",
    "FORMAT",
    "PUBLIC_FIGURES",
    "SEED_FIGURES",
    "ModelSpec",
    "Plan",
    "PublicFigure",
    "SeedFigure",
    "estimate_epoch_seconds",
    "leaderboard_figure",
    "load_rows",
    "merge_rows",
    "parse_model_spec",
    "plan_leaderboard",
    "provenance",
    "render_markdown",
    "row_key",
    "run_leaderboard",
    "update_leaderboard",
]

FORMAT = "cnnzoo-leaderboard/1"

# What a 2-core CPU trains in reasonable time. The 96x96 networks run at 32x32 (the smallest power of two
# DenseNet's strided stem accepts): measured there at 0.1-0.2 s per 128-image step, against ~6 s for the
# small_input (stride-1 stem) variants at 28x28, which are for GPUs (`resnet18:small_input`).
DEFAULT_MODELS = ("lenet", "lenet_bn", "googlenet@32", "resnet18@32", "densenet@32")

BUDGET_SLACK = 1.25  # the safety net lets a run end at most this far past its budget
PROBE_STEPS = 5  # the probe times at least this many training steps (after two untimed ones) ...
PROBE_SECONDS = 2.0  # ... and at least this long (one step's timing is too noisy on a shared CPU)


# ------------------------------------------------------------------------------------------------
# reference figures: the seed notes' printed accuracies, and the public benchmark's
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedFigure:
    """A test accuracy a seed note printed (``None``: the note trains the network but shows only a plot)."""

    seed: str
    file: str
    network: str
    test_acc: float | None
    setting: str


_S001, _S004 = "001_70d93ee0d85711d7.txt", "004_6cf3ddff8946258a.txt"

# Every figure is the closing `test acc` line of the seed's own run (train_ch6: plain SGD, Xavier init,
# cross-entropy, no normalisation or augmentation; seed 004: its own loop). Seeds 000 and 002 only define
# the training cells (never run), seed 003 has no training output.
SEED_FIGURES: dict[str, tuple[SeedFigure, ...]] = {
    "lenet": (SeedFigure("001", _S001, "LeNet (sigmoid)", None, "SGD lr 0.9, 10 epochs, batch 256, 28x28"),),
    "lenet_bn": (
        SeedFigure(
            "001",
            _S001,
            "LeNet with batch norm",
            0.830,
            "SGD lr 1.0, 10 epochs, batch 256, 28x28 (one printed result for the cell's two runs: hand-written "
            "BatchNorm, then nn.BatchNorm)",
        ),
    ),
    "alexnet": (SeedFigure("001", _S001, "AlexNet", None, "SGD lr 0.01, 10 epochs, batch 128, 224x224"),),
    "vgg": (
        SeedFigure(
            "001", _S001, "VGG-11, a quarter of the channels", 0.911, "SGD lr 0.05, 10 epochs, batch 128, 224x224"
        ),
    ),
    "nin": (SeedFigure("001", _S001, "NiN", None, "SGD lr 0.1, 10 epochs, batch 128, 224x224"),),
    "googlenet": (SeedFigure("001", _S001, "GoogLeNet", 0.886, "SGD lr 0.1, 10 epochs, batch 128, 96x96"),),
    "resnet": (
        SeedFigure("001", _S001, "ResNet-18", 0.915, "SGD lr 0.05, 10 epochs, batch 256, 96x96"),
        SeedFigure(
            "004",
            _S004,
            "ResNet-18",
            0.918,
            "Adam lr 0.001, StepLR (step 2, gamma 0.9), 10 epochs, batch 256, 96x96, PyTorch's init; last epoch "
            "0.9181, also its best",
        ),
    ),
    "densenet": (SeedFigure("001", _S001, "DenseNet", 0.882, "SGD lr 0.1, 10 epochs, batch 256, 96x96"),),
}


@dataclass(frozen=True)
class PublicFigure:
    """A test accuracy from the public Fashion-MNIST benchmark table: someone else's architecture and training."""

    architecture: str
    test_acc: float
    preprocessing: str


PUBLIC_SOURCE = (
    "the benchmark table of the Fashion-MNIST README (zalandoresearch/fashion-mnist, "
    "https://github.com/zalandoresearch/fashion-mnist#benchmark)"
)
_STANDARD = "mean/std normalisation, random crops and horizontal flips"
# The best entry of that table for an architecture of each family; WRN40-4 is the table's best overall.
PUBLIC_FIGURES: dict[str, PublicFigure] = {
    "alexnet": PublicFigure("AlexNet with triplet loss", 0.899, "none"),
    "vgg": PublicFigure("VGG16, 26M parameters", 0.935, "none"),
    "googlenet": PublicFigure("GoogLeNet with cross-entropy loss", 0.937, "none"),
    "resnet": PublicFigure(
        "ResNet18", 0.949, "normalisation, random horizontal and vertical flips, translation, rotation"
    ),
    "densenet": PublicFigure("DenseNet-BC, 768K parameters", 0.954, _STANDARD),
}
PUBLIC_BEST = PublicFigure("WRN40-4, 8.9M parameters", 0.967, _STANDARD)


def _reference_key(name: str, family: str) -> str:
    """Which seed network a registry model descends from (the LeNet family holds two of them)."""
    if name.startswith("lenet_bn"):
        return "lenet_bn"
    return family


# ------------------------------------------------------------------------------------------------
# model specs and the plan
# ------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """One leaderboard entry, validated before anything trains: the spec, its input side and its config."""

    spec: ModelSpec
    input_size: int
    config: TrainConfig
    family: str
    params: int
    macs: int


def _meta_model(spec: ModelSpec, data: ImageDataset) -> nn.Module:
    """The model on the meta device (instant): its size limits under these kwargs, its params and MACs."""
    return meta_model(spec.name, spec.kwargs, num_classes=data.num_classes, in_channels=data.in_channels)


def plan_leaderboard(
    models: Sequence[str | ModelSpec],
    data: ImageDataset,
    *,
    recipe: str = "fast",
    overrides: Mapping[str, Any] | None = None,
    input_size: int | None = None,
) -> list[Plan]:
    """Check every model, input size and setting before the first run, so a typo fails in seconds, not hours.

    The side is the spec's ``@SIDE``, else ``input_size``, else the model's own default under its kwargs
    (``small_input=True`` makes it 28). ``overrides`` are :class:`TrainConfig` fields the user chose.
    """
    from cnnzoo.inspection import count_macs

    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "resize" in overrides or "model_kwargs" in overrides or "seed" in overrides:
        raise TypeError("give the input side as input_size or MODEL@SIDE, kwargs in the spec, seeds as seeds=")
    specs = [m if isinstance(m, ModelSpec) else parse_model_spec(m) for m in models]
    if not specs:
        raise ConfigError("no models to train: name at least one (see `cnnzoo models`)")
    plans = []
    for spec in specs:
        meta = _meta_model(spec, data)
        side = spec.input_size or input_size or int(meta.default_input_size)
        low, high = int(meta.min_input_size), meta.max_input_size
        if side < low or (high is not None and side > high):
            accepts = f"{low}-{high}" if high is not None else f">= {low}"
            raise ConfigError(
                f"model {spec.label}: input side {side} is outside what it accepts ({accepts}): "
                f"name it as {spec.label}@{int(meta.default_input_size)}"
            )
        # resolve_config checks the side against the registry's default-kwargs limits (small_input lowers
        # DenseNet's minimum to 8), so the side goes in afterwards, checked above against this very model.
        config = resolve_config(spec.name, recipe, overrides)
        config = validate_config(dataclasses.replace(config, resize=side, model_kwargs=dict(spec.kwargs)))
        plans.append(
            Plan(
                spec=spec,
                input_size=side,
                config=config,
                family=get_model_info(spec.name).family,
                params=sum(p.numel() for p in meta.parameters()),
                macs=count_macs(meta, side),
            )
        )
    entries = [(p.spec.label, p.input_size) for p in plans]
    for label, side in dict.fromkeys(entries):
        if entries.count((label, side)) > 1:
            raise ConfigError(f"model {label}@{side} is listed {entries.count((label, side))} times: name it once")
    return plans


# ------------------------------------------------------------------------------------------------
# the budget: a probe picks the epochs, a safety net stops at an epoch's end
# ------------------------------------------------------------------------------------------------
def _build(plan: Plan, data: ImageDataset, setup: DeviceSetup, seed: int) -> nn.Module:
    torch.manual_seed(seed)  # the model's own init, as `cnnzoo train` does; fit seeds again before training
    model = create_model(
        plan.spec.name, num_classes=data.num_classes, in_channels=data.in_channels, **dict(plan.spec.kwargs)
    )
    model.to(setup.device)
    if setup.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def estimate_epoch_seconds(
    plan: Plan,
    data: ImageDataset,
    setup: DeviceSetup,
    *,
    steps: int = PROBE_STEPS,
    min_seconds: float | None = None,
) -> float:
    """Seconds one epoch of ``plan`` takes here, training and evaluation, from a few timed steps.

    Two untimed steps first (allocations, kernel choice), then at least ``steps`` training steps and at
    least ``min_seconds`` (default :data:`PROBE_SECONDS`) on the real batches (augmentation included, as in
    :func:`fit`); then one untimed and one timed evaluation batch; both scaled to the splits' sizes. A
    throw-away model takes the steps.
    """
    config = plan.config
    min_seconds = PROBE_SECONDS if min_seconds is None else min_seconds
    model = _build(plan, data, setup, config.seed)
    train = make_batches(data, config, split="train", setup=setup, resize=plan.input_size)
    test = make_batches(data, config, split="test", setup=setup, resize=plan.input_size)
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config, len(train))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    model.train()
    batches = iter(train)
    warm = min(2, len(train) - 1)
    if warm > 0:
        train_one_epoch(model, itertools.islice(batches, warm), optimizer, scheduler, loss_fn, setup=setup)
    done, start = [0], time.perf_counter()

    def enough() -> bool:  # polled after every step (train_one_epoch syncs nothing here: a CPU clock read)
        done[0] += 1
        return done[0] >= steps and time.perf_counter() - start >= min_seconds

    totals, _ = train_one_epoch(model, batches, optimizer, scheduler, loss_fn, setup=setup, should_stop=enough)
    train_seconds = totals.seconds / max(1, totals.count) * train.num_samples
    first = list(itertools.islice(iter(test), 2))
    evaluate_batches(model, first[:1], setup=setup, num_classes=data.num_classes)  # untimed: eval-mode warm-up
    result = evaluate_batches(model, first[-1:], setup=setup, num_classes=data.num_classes)
    eval_seconds = result.seconds / max(1, result.count) * test.num_samples
    del model, optimizer, scheduler
    free_device_memory(setup.device)
    return train_seconds + eval_seconds


class _BudgetStop(Callback):
    """``should_stop`` for :func:`fit`: True only at an epoch's end, when the next epoch would end past
    ``seconds * slack`` (the epoch count was fitted to the budget already; this catches a bad estimate)."""

    def __init__(self, seconds: float, slack: float = BUDGET_SLACK) -> None:
        self.seconds, self.slack = seconds, slack
        self.start = time.perf_counter()
        self.epochs_done = 0
        self.at_epoch_end = False
        self.triggered = False

    def on_train_start(self, state: TrainState) -> None:
        self.start, self.epochs_done, self.at_epoch_end, self.triggered = time.perf_counter(), 0, False, False

    def on_epoch_end(self, state: TrainState) -> None:
        self.epochs_done, self.at_epoch_end = state.epoch, True

    def on_stop(self, state: TrainState) -> None:
        self.triggered = True

    def next_epoch_overruns(self, now: float | None = None) -> bool:
        """Whether one more epoch, as long as the mean so far, would end past the budget and its slack."""
        elapsed = (time.perf_counter() if now is None else now) - self.start
        return elapsed + elapsed / max(1, self.epochs_done) > self.seconds * self.slack

    def __call__(self) -> bool:
        if not self.at_epoch_end:
            return False  # polled after every step: only an epoch's end may stop the run
        self.at_epoch_end = False
        return self.next_epoch_overruns()


def _budget_epochs(epoch_seconds: float, budget_seconds: float, max_epochs: int) -> int:
    """Whole epochs that fit in the budget: at least one, at most the recipe's."""
    if epoch_seconds <= 0 or not math.isfinite(epoch_seconds):
        return max_epochs
    return max(1, min(max_epochs, math.floor(budget_seconds / epoch_seconds)))


# ------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------
def provenance(setup: DeviceSetup, command: str | None) -> dict[str, Any]:
    """Where and how a row was measured: it travels with the row into the merged JSON."""
    env = environment_info(setup.describe())
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command or "(library call: cnnzoo.leaderboard.run_leaderboard)",
        "machine": env["cpu"],
        **{k: env[k] for k in ("platform", "python", "torch", "cnnzoo", "device")},
    }


def _setting(config: TrainConfig) -> str:
    parts = [f"{config.optimizer} lr {config.lr:g}", f"schedule {config.schedule}", f"batch {config.batch_size}"]
    parts += [f"augment {config.augment}", f"weight decay {config.weight_decay:g}"]
    parts += [f"label smoothing {config.label_smoothing:g}", f"init {config.init}"]
    parts.append("normalised" if config.normalize else "pixels in [0, 1]")
    return ", ".join(parts)


def _run_record(seed: int, history: Sequence[Mapping[str, Any]], stopped: bool) -> dict[str, Any]:
    train_seconds = sum(r["train_seconds"] for r in history)
    images = sum(r["images_per_sec"] * r["train_seconds"] for r in history)
    return {
        "seed": seed,
        "epochs": len(history),
        "test_acc": history[-1]["test_acc"],
        "peak_test_acc": max(r["test_acc"] for r in history),
        "train_seconds": train_seconds,
        "eval_seconds": sum(r["eval_seconds"] for r in history),
        "images_per_sec": images / train_seconds if train_seconds > 0 else float("nan"),
        "stopped_by_budget": stopped,
    }


def _stats(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single run: one seed has no spread)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _row(
    plan: Plan, data: ImageDataset, setup: DeviceSetup, runs: list[dict], budget: float | None, origin: dict
) -> dict:
    acc_mean, acc_std = _stats([r["test_acc"] for r in runs])
    time_mean, time_std = _stats([r["train_seconds"] for r in runs])
    return {
        "model": plan.spec.label,
        "name": plan.spec.name,
        "kwargs": dict(plan.spec.kwargs),
        "family": plan.family,
        "dataset": data.name,
        "input_size": plan.input_size,
        "params": plan.params,
        "macs": plan.macs,
        "recipe": plan.config.recipe,
        "setting": _setting(plan.config),
        "epochs_planned": plan.config.epochs,
        "budget_minutes": None if budget is None else budget / 60,
        "seeds": [r["seed"] for r in runs],
        "runs": runs,
        "test_acc_mean": acc_mean,
        "test_acc_std": acc_std,
        "test_acc_best": max(r["test_acc"] for r in runs),
        "train_seconds_mean": time_mean,
        "train_seconds_std": time_std,
        "images_per_sec_mean": statistics.fmean(r["images_per_sec"] for r in runs),
        "device": setup.describe().split(",")[0],
        "precision": setup.precision,
        "provenance": {**origin, "device": setup.describe()},
    }


def run_leaderboard(
    models: Sequence[str | ModelSpec],
    data: ImageDataset,
    *,
    recipe: str = "fast",
    overrides: Mapping[str, Any] | None = None,
    seeds: Sequence[int] = (0, 1, 2),
    budget_seconds: float | None = None,
    input_size: int | None = None,
    command: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train every model once per seed with ``recipe`` (and ``overrides``) on ``data``; return one row each.

    ``budget_seconds`` caps each run (see the module docstring); ``progress`` is :func:`fit`'s bar and
    epoch lines; ``log`` receives one line per decision and per finished run; ``on_row`` gets each row as
    soon as its seeds are done (the CLI writes the files there, so an interruption loses one model at most).
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("no seeds: give at least one, as in --seeds 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: each seed once")
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: seeds are whole numbers >= 0")
    if budget_seconds is not None and not (budget_seconds > 0 and math.isfinite(budget_seconds)):
        raise ConfigError(f"--budget-minutes {budget_seconds / 60:g}: must be a positive number of minutes")
    say = log or (lambda line: None)
    origin: dict[str, Any] = {}
    plans = plan_leaderboard(models, data, recipe=recipe, overrides=overrides, input_size=input_size)
    rows = []
    for plan in plans:
        setup = setup_device(plan.config.device, plan.config.precision, plan.config.channels_last)
        origin = origin or provenance(setup, command)  # one invocation, one record (its start time)
        name = f"{plan.spec.label}@{plan.input_size}"
        # Always probed: the probe is also the untimed warm-up (allocator, kernel selection), so the first
        # seed's timing is not inflated by one-time costs the others do not pay.
        estimate = estimate_epoch_seconds(plan, data, setup)
        if budget_seconds is not None:
            epochs = _budget_epochs(estimate, budget_seconds, plan.config.epochs)
            say(
                f"{name}: about {estimate:.1f} s per epoch on {setup.label} -> {epochs} of {plan.config.epochs} "
                f"epochs fit in the {budget_seconds / 60:.3g}-minute budget"
            )
            plan.config = dataclasses.replace(plan.config, epochs=epochs)
        else:
            total = estimate * plan.config.epochs * len(seeds)
            say(
                f"{name}: about {estimate:.1f} s per epoch on {setup.label} -> {plan.config.epochs} epochs x "
                f"{len(seeds)} seed(s), about {total / 60:.1f} min"
            )
        runs = []
        for seed in seeds:
            config = dataclasses.replace(plan.config, seed=seed)
            model = _build(plan, data, setup, seed)
            stop = _BudgetStop(budget_seconds) if budget_seconds is not None else None
            history = fit(
                model,
                data,
                config,
                setup=setup,
                callbacks=[*default_callbacks(progress), *([stop] if stop else [])],
                should_stop=stop,
            )
            run = _run_record(seed, history, bool(stop and stop.triggered))
            runs.append(run)
            cut = " (stopped by the budget)" if run["stopped_by_budget"] else ""
            say(
                f"{name} seed {seed}: test acc {run['test_acc']:.4f} after {run['epochs']} epochs{cut}, "
                f"{run['train_seconds']:.1f} s training, {run['images_per_sec']:,.0f} images/s"
            )
            del model
            free_device_memory(setup.device)
        row = _row(plan, data, setup, runs, budget_seconds, origin)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows


# ------------------------------------------------------------------------------------------------
# files: merge into the JSON, render markdown and PNG from it
# ------------------------------------------------------------------------------------------------
def row_key(row: Mapping[str, Any]) -> tuple:
    """What makes two rows the same measurement (a rerun replaces it): model, side, recipe, data, device."""
    return (row["model"], row["input_size"], row["recipe"], row["dataset"], row["device"])


def merge_rows(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``old`` with each row of ``new`` replacing the row of the same :func:`row_key`, or appended."""
    merged = {row_key(r): dict(r) for r in old}
    for r in new:
        merged[row_key(r)] = dict(r)
    return list(merged.values())


def load_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The rows of a leaderboard JSON; ``[]`` when the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}): fix it, move it away or choose another --output") from None
    rows = doc.get("rows") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{path} is not a cnnzoo leaderboard ({FORMAT}): move it away or choose another --output")
    try:
        for r in rows:
            row_key(r)
    except KeyError as exc:
        raise ConfigError(f"{path}: a row has no {exc.args[0]!r}: fix it or move it away") from None
    return rows


def _sorted(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda r: (r["dataset"] != "fashion-mnist", r["dataset"], -r["test_acc_mean"], r["model"]))


def update_leaderboard(
    output: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]] = ()
) -> tuple[Path, Path, Path, list[dict[str, Any]]]:
    """Merge ``rows`` into the JSON beside ``output`` (``X.md`` -> ``X.json``), then rewrite ``X.md`` and
    ``X.png`` from every row there. Returns the three paths and all rows. With no rows: a redraw."""
    from cnnzoo.atomic import atomic_write_text
    from cnnzoo.plots import save_figure

    md = Path(output)
    if md.suffix != ".md":
        raise ConfigError(f"--output {md}: give a Markdown file name ending in .md (the .json and .png go beside it)")
    js, png = md.with_suffix(".json"), md.with_suffix(".png")
    merged = _sorted(merge_rows(load_rows(js), rows))
    if not merged:
        raise ConfigError(f"{js} has no rows to draw: run `cnnzoo leaderboard` with some models first")
    atomic_write_text(js, json.dumps({"format": FORMAT, "rows": merged}, indent=2) + "\n")
    save_figure(leaderboard_figure(merged), png)
    atomic_write_text(md, render_markdown(merged, png_name=png.name, json_name=js.name))
    return md, js, png, [dict(r) for r in merged]


def _human(n: float) -> str:
    from cnnzoo.inspection import human

    return human(n)


def _acc(row: Mapping[str, Any]) -> str:
    std = row.get("test_acc_std")
    return f"{row['test_acc_mean']:.4f} ± {std:.4f}" if std is not None else f"{row['test_acc_mean']:.4f}"


def _seconds(s: float) -> str:
    return f"{s:,.0f} s" if s >= 100 else f"{s:.1f} s"


def _epochs(row: Mapping[str, Any]) -> str:
    counts = [r["epochs"] for r in row["runs"]]
    text = str(counts[0]) if len(set(counts)) == 1 else "/".join(map(str, counts))
    if row.get("budget_minutes") is not None:
        text += f" ({row['budget_minutes']:.3g}-min budget)"
    if any(r.get("stopped_by_budget") for r in row["runs"]):
        text += ", cut short"
    return text


def _seed_cell(row: Mapping[str, Any]) -> str:
    figures = SEED_FIGURES.get(_reference_key(row["name"], row["family"]), ())
    if not figures:
        return "–"
    return ", ".join(
        f"{f.test_acc:.3f} (seed {f.seed})" if f.test_acc is not None else f"– (seed {f.seed}: plot only)"
        for f in figures
    )


def _public_cell(row: Mapping[str, Any]) -> str:
    figure = PUBLIC_FIGURES.get(_reference_key(row["name"], row["family"]))
    return f"{figure.test_acc:.3f} ({figure.architecture})" if figure else "–"


def render_markdown(
    rows: Sequence[Mapping[str, Any]], *, png_name: str = "leaderboard.png", json_name: str = "leaderboard.json"
) -> str:
    """The leaderboard page: one table per dataset, the reference figures, and each run's provenance."""
    rows = _sorted(rows)
    runs: dict[str, int] = {}
    for r in rows:
        runs.setdefault(json.dumps(r["provenance"], sort_keys=True), len(runs) + 1)
    out = [
        "# Leaderboard",
        "",
        "Generated by `cnnzoo leaderboard` from "
        f"`{json_name}` (beside this file: every row with its per-seed results); `cnnzoo leaderboard --redraw` "
        "rewrites this page and the figure from it, and a run with other models adds rows to it.",
        "",
        "- **test acc**: each seed's last-epoch test accuracy (never the best epoch), mean ± sample standard "
        "deviation over the seeds; **best**: the best seed's.",
        "- **train time**: the training epochs' wall time (data preparation included, evaluation excluded), mean "
        "over the seeds; **images/s**: training images over that time. A few untimed probe steps warm the device "
        "up before each model's runs.",
        "- **epochs**: with a budget, as many whole epochs as a short probe said fit in it (the schedule is laid "
        'over them); "cut short": a run stopped at an epoch\'s end to keep to the budget.',
        "- **seed notes' figure** and **public figure** are not ours: reference numbers with other set-ups and "
        "(public) other architectures, listed below.",
        "",
        f"![test accuracy against MACs and against training time]({png_name})",
        "",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == dataset]
        refs = dataset == "fashion-mnist"
        out += [f"## {dataset}", ""]
        head = ["#", "model", "input", "params", "MACs", "recipe", "epochs", "seeds", "test acc (mean ± std)"]
        head += ["best", "train time", "images/s", "device", "run"]
        if refs:
            head += ["seed notes' figure", "public figure (not ours)"]
        out += ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if h in _RIGHT else "---" for h in head) + "|"]
        for rank, r in enumerate(group, 1):
            cells = [
                str(rank),
                r["model"],
                f"{r['input_size']}x{r['input_size']}",
                f"{r['params']:,}",
                _human(r["macs"]),
                r["recipe"],
                _epochs(r),
                " ".join(map(str, r["seeds"])),
                _acc(r),
                f"{r['test_acc_best']:.4f}",
                _seconds(r["train_seconds_mean"]),
                f"{r['images_per_sec_mean']:,.0f}",
                f"{r['device']}, {r['precision']}",
                f"[{runs[json.dumps(r['provenance'], sort_keys=True)]}]",
            ]
            if refs:
                cells += [_seed_cell(r), _public_cell(r)]
            out.append("| " + " | ".join(cells) + " |")
        out += ["", "Training set-ups:", ""]
        out += [f"- {r['model']} @ {r['input_size']} ({r['recipe']}): {r['setting']}" for r in group]
        out.append("")
        if not refs:
            out += ["(No reference figures: the seed notes and the public table are for Fashion-MNIST.)", ""]
    if any(r["dataset"] == "fashion-mnist" for r in rows):
        out += _reference_section()
    out += ["## Runs", ""]
    for text, number in runs.items():
        p = json.loads(text)
        out.append(
            f"{number}. `{p['command']}` — {p['date']}; machine: {p['machine']} ({p['platform']}); "
            f"torch {p['torch']}, cnnzoo {p['cnnzoo']}, Python {p['python']}; device: {p['device']}"
        )
    return "\n".join(out) + "\n"


_RIGHT = {"#", "input", "params", "MACs", "epochs", "test acc (mean ± std)", "best", "train time", "images/s"}


def _reference_section() -> list[str]:
    out = [
        "## Reference figures (not ours)",
        "",
        "**Seed notes' figures**: the test accuracy each seed note printed at the end of its own training run "
        "(`train_ch6`: plain SGD, Xavier init, no normalisation or augmentation, unless said), on a GPU. "
        '"plot only": the note trains the network but shows its curves as an image, with no number.',
        "",
        "| network | seed note | set-up | test acc |",
        "|---|---|---|---:|",
    ]
    for figures in SEED_FIGURES.values():
        for f in figures:
            acc = f"{f.test_acc:.3f}" if f.test_acc is not None else "– (plot only)"
            out.append(f"| {f.network} | seed {f.seed} (`{f.file}`) | {f.setting} | {acc} |")
    out += [
        "",
        f"**Public figures**: the best test accuracy listed for an architecture of the family in {PUBLIC_SOURCE}. "
        "They are other people's results, not reproduced here, with their own architectures (VGG16 is not the "
        "seeds' VGG-11, DenseNet-BC is not the seeds' DenseNet), losses, preprocessing and training lengths.",
        "",
        "| family | architecture | preprocessing | test acc |",
        "|---|---|---|---:|",
    ]
    for family, f in PUBLIC_FIGURES.items():
        out.append(f"| {family} | {f.architecture} | {f.preprocessing} | {f.test_acc:.3f} |")
    out += [
        f"| (best overall) | {PUBLIC_BEST.architecture} | {PUBLIC_BEST.preprocessing} | {PUBLIC_BEST.test_acc:.3f} |",
        "",
    ]
    return out


def leaderboard_figure(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Test accuracy against MACs per image and against training time (both log x), error bars = the
    standard deviation over the seeds; one colour per device, each point labelled with its model."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 5))
    ax_macs, ax_time = fig.subplots(1, 2)
    devices = list(dict.fromkeys(r["device"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    colors = [f"C{i % 10}" for i in range(len(devices))]
    markers = "osD^v<>ph*"
    for r in rows:
        color = colors[devices.index(r["device"])]
        marker = markers[datasets.index(r["dataset"]) % len(markers)]
        yerr = r["test_acc_std"] or 0.0
        label = f"{r['model']}@{r['input_size']}"
        for ax, x, xerr in (
            (ax_macs, r["macs"], 0.0),
            (ax_time, r["train_seconds_mean"], r["train_seconds_std"] or 0.0),
        ):
            ax.errorbar(x, r["test_acc_mean"], xerr=xerr, yerr=yerr, fmt=marker, color=color, capsize=3, markersize=6)
            ax.annotate(label, (x, r["test_acc_mean"]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    for ax, xlabel in ((ax_macs, "MACs per image (log scale)"), (ax_time, "training time per run, s (log scale)")):
        ax.set_xscale("log")
        ax.margins(x=0.15, y=0.08)  # room for the labels of the outermost points
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy (mean ± std over seeds)")
        ax.grid(True, which="both", alpha=0.3)
    handles = [ax_macs.errorbar([], [], yerr=[], fmt="o", color=colors[i], label=d) for i, d in enumerate(devices)]
    ax_macs.legend(handles=handles, loc="best", fontsize="small", title="device")
    title = ", ".join(datasets)
    ax_macs.set_title(f"{title}: accuracy against cost")
    ax_time.set_title(f"{title}: accuracy against training time")
    fig.tight_layout()
    return fig
