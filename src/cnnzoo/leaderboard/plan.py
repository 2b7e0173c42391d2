"""The leaderboard: every chosen network trained the same way, over several seeds, one row each.

``cnnzoo leaderboard`` answers *which of the chapter's networks is worth its cost on this machine*: each
model is trained with one recipe and one budget over several seeds, and its row holds input size,
parameters, MACs, epochs, test accuracy (mean ± sample std over the random seeds, and the best seed), training
time, images/s and the device. This module plans and runs; :mod:`cnnzoo.leaderboard.board` merges the rows into the
JSON and draws the page and figure, beside the book's and the public benchmark's figures
(:mod:`cnnzoo.models.references`), which are **not ours**.

**One way through.** Each entry's config is made by the run layer (:func:`cnnzoo.run.make_config`), as
``cnnzoo train`` makes it: the spec's ``@SIDE`` and keyword arguments, the recipe, the user's overrides,
the data's channels and classes, and the one input-size check. Each seed's model is
:func:`cnnzoo.run.build_model`'s, placed on the device by :meth:`~cnnzoo.base.devices.DeviceSetup.place`.

Measurement, as :func:`cnnzoo.fit` does it: a row's test accuracy is each seed's *last* epoch (no
picking the best epoch on the test set); training time is the training epochs' wall time, data
preparation included and evaluation excluded; images/s is training images over that time
(:func:`cnnzoo.train.history.run_images_per_sec`). Before a model's runs, a probe of a few steps on a throw-away
copy (:func:`estimate_epoch_seconds`) warms the device up, so the first seed does not pay one-time costs
the others do not, and estimates the time.

**Budget.** ``budget_seconds`` caps each run's wall time (training and evaluation). Stopping a run
half-way would leave the one-cycle schedule at its peak learning rate and report an unconverged network,
so the budget picks the *number of epochs* instead: from the probe's estimate (its steps are not
counted), the run gets as many whole epochs as fit in the budget (at least one, at most the recipe's
or ``--epochs``), with its schedule laid over them. Should the probe have been optimistic, a safety net
stops the run at the end of an epoch once the next one would end more than 25 % past the budget
(``fit``'s ``should_stop``); the row then says so.

**Model specs.** ``NAME[:KWARG[=VALUE][,KWARG...]][@SIDE]``: ``resnet18:small_input`` builds
``create_model("resnet18", small_input=True)``; ``googlenet@32`` trains GoogLeNet at 32x32. ``input_size``
(``--input-size``) is the side of the models named without ``@SIDE``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch
from torch import nn

from cnnzoo.base.devices import DeviceSetup, free_device_memory, setup_device
from cnnzoo.base.errors import ConfigError
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.leaderboard.board import merge_rows
from cnnzoo.models.inspection import count_macs
from cnnzoo.models.registry import ModelSpec, create_model, get_model_info, parse_model_spec
from cnnzoo.run import build_model, environment_info, make_config
from cnnzoo.run.progress import default_callbacks
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.history import run_images_per_sec
from cnnzoo.train.loop import evaluate_batches, fit, make_batches, train_one_epoch
from cnnzoo.train.optim import build_optimizer, build_scheduler
from cnnzoo.train.state import Callback, TrainState

__all__ = [
    "BUDGET_SLACK",
    "ModelSpec",
    "Plan",
    "estimate_epoch_seconds",
    "parse_model_spec",
    "plan_leaderboard",
    "provenance",
    "run_leaderboard",
]

BUDGET_SLACK = 1.25  # the safety net lets a run end at most this far past its budget
PROBE_STEPS = 5  # the probe times at least this many training steps (after two untimed ones) ...
PROBE_SECONDS = 2.0  # ... and at least this long (one step's timing is too noisy on a shared CPU)


# ------------------------------------------------------------------------------------------------
# the plan
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


def _plan(
    spec: ModelSpec, data: ImageDataset, recipe: str, overrides: Mapping[str, Any], input_size: int | None
) -> Plan:
    """The run layer's config for ``spec`` (``input_size`` only where the spec has no ``@SIDE``), and what
    the network it builds is: parameters and MACs, from a copy on the meta device (instant)."""
    side = {"resize": input_size} if spec.input_size is None and input_size is not None else {}
    config = make_config(spec, recipe=recipe, overrides={**overrides, **side}, data=data)
    with torch.device("meta"):
        meta = create_model(config.model, **config.model_kwargs)
    return Plan(
        spec=spec,
        input_size=config.resize,
        config=config,
        family=get_model_info(spec.name).family,
        params=sum(p.numel() for p in meta.parameters()),
        macs=count_macs(meta, config.resize),
    )


def plan_leaderboard(
    models: Sequence[str | ModelSpec],
    data: ImageDataset,
    *,
    recipe: str = "fast",
    overrides: Mapping[str, Any] | None = None,
    input_size: int | None = None,
) -> list[Plan]:
    """Check every model, input size and setting before the first run, so a typo fails in seconds, not hours.

    The side is the spec's ``@SIDE``, else ``input_size``, else the recipe's or the model's own under its
    kwargs (``small_input=True`` makes it 28), as :func:`cnnzoo.run.make_config` decides for ``cnnzoo
    train``. ``overrides`` are :class:`TrainConfig` fields the user chose; the dataset is ``data``'s unless
    they name it.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "resize" in overrides or "model_kwargs" in overrides or "seed" in overrides:
        raise TypeError("give the input side as input_size or MODEL@SIDE, kwargs in the spec, seeds as seeds=")
    overrides.setdefault("dataset", data.name)  # the data decide the network's channels and classes
    specs = [m if isinstance(m, ModelSpec) else parse_model_spec(m) for m in models]
    if not specs:
        raise ConfigError("no models to train: name at least one (see `cnnzoo models`)")
    plans = [_plan(spec, data, recipe, overrides, input_size) for spec in specs]
    entries = [(p.spec.label, p.input_size) for p in plans]
    for label, side in dict.fromkeys(entries):
        if entries.count((label, side)) > 1:
            raise ConfigError(f"model {label}@{side} is listed {entries.count((label, side))} times: name it once")
    return plans


# ------------------------------------------------------------------------------------------------
# the budget: a probe picks the epochs, a safety net stops at an epoch's end
# ------------------------------------------------------------------------------------------------
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
    model = setup.place(build_model(config))
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


def _fit_to_budget(
    plan: Plan, data: ImageDataset, setup: DeviceSetup, budget_seconds: float | None, n_seeds: int
) -> str:
    """Probe ``plan`` (always: the probe is also the untimed warm-up, so the first seed's timing is not
    inflated by one-time costs the others do not pay); with a budget, set its epochs to what fits. Returns
    the line that says what was decided."""
    name = f"{plan.spec.label}@{plan.input_size}"
    estimate = estimate_epoch_seconds(plan, data, setup)
    head = f"{name}: about {estimate:.1f} s per epoch on {setup.label} -> "
    if budget_seconds is None:
        total = estimate * plan.config.epochs * n_seeds
        return head + f"{plan.config.epochs} epochs x {n_seeds} seed(s), about {total / 60:.1f} min"
    epochs = _budget_epochs(estimate, budget_seconds, plan.config.epochs)
    line = head + f"{epochs} of {plan.config.epochs} epochs fit in the {budget_seconds / 60:.3g}-minute budget"
    plan.config = dataclasses.replace(plan.config, epochs=epochs)
    return line


# ------------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------------
def provenance(setup: DeviceSetup, command: str | None) -> dict[str, Any]:
    """Where and how a row was measured: it travels with the row into the merged JSON."""
    env = environment_info(setup.describe())
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command or "(library call: cnnzoo.leaderboard.plan.run_leaderboard)",
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
    return {
        "seed": seed,
        "epochs": len(history),
        "test_acc": history[-1]["test_acc"],
        "peak_test_acc": max(r["test_acc"] for r in history),
        "train_seconds": sum(r["train_seconds"] for r in history),
        "eval_seconds": sum(r["eval_seconds"] for r in history),
        "images_per_sec": run_images_per_sec(history),
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
        "device": setup.name,
        "precision": setup.precision,
        "provenance": {**origin, "device": setup.describe()},
    }


def _check_run_settings(seeds: Sequence[int], budget_seconds: float | None) -> None:
    if not seeds:
        raise ConfigError("no seeds: give at least one, as in --seeds 0")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: each seed once")
    if any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: seeds are whole numbers >= 0")
    if budget_seconds is not None and not (budget_seconds > 0 and math.isfinite(budget_seconds)):
        raise ConfigError(f"--budget-minutes {budget_seconds / 60:g}: must be a positive number of minutes")


def _train_seed(
    plan: Plan, data: ImageDataset, setup: DeviceSetup, seed: int, budget_seconds: float | None, progress: bool
) -> dict[str, Any]:
    """One run of ``plan`` with ``seed``: the run layer's model on the device, :func:`fit`, its record."""
    config = dataclasses.replace(plan.config, seed=seed)
    model = setup.place(build_model(config))
    stop = _BudgetStop(budget_seconds) if budget_seconds is not None else None
    history = fit(
        model,
        data,
        config,
        setup=setup,
        callbacks=[*default_callbacks(progress), *([stop] if stop else [])],
        should_stop=stop,
    )
    del model
    free_device_memory(setup.device)
    return _run_record(seed, history, bool(stop and stop.triggered))


def _refuse_smaller_reruns(
    plans: Sequence[Plan],
    data: ImageDataset,
    seeds: Sequence[int],
    budget_seconds: float | None,
    existing: Sequence[Mapping[str, Any]],
    source: str,
) -> None:
    """What :func:`board.merge_rows` would refuse after training, said before it: each plan as the row it
    will make (its key and its seeds; the epochs are the plan's, or the budget's)."""
    planned = []
    for plan in plans:
        setup = setup_device(plan.config.device, plan.config.precision, plan.config.channels_last)
        planned.append(
            {
                "model": plan.spec.label,
                "input_size": plan.input_size,
                "recipe": plan.config.recipe,
                "dataset": data.name,
                "device": setup.name,
                "epochs_planned": plan.config.epochs,
                "budget_minutes": None if budget_seconds is None else budget_seconds / 60,
                "seeds": list(seeds),
                "runs": [{"epochs": plan.config.epochs} for _ in seeds],
            }
        )
    merge_rows(existing, planned, source=source)


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
    existing: Sequence[Mapping[str, Any]] = (),
    replace: bool = False,
    source: str = "the leaderboard",
) -> list[dict[str, Any]]:
    """Train every model once per seed with ``recipe`` (and ``overrides``) on ``data``; return one row each.

    ``budget_seconds`` caps each run (see the module docstring); ``progress`` is :func:`fit`'s bar and
    epoch lines; ``log`` receives one line per decision and per finished run; ``on_row`` gets each row as
    soon as its seeds are done (the CLI writes the files there, so an interruption loses one model at most).
    ``existing``: the rows already in ``source``; a planned row that would measure less than the row it
    replaces (fewer seeds) is refused before anything trains, unless ``replace``.
    """
    seeds = [int(s) for s in seeds]
    _check_run_settings(seeds, budget_seconds)
    say = log or (lambda line: None)
    origin: dict[str, Any] = {}
    plans = plan_leaderboard(models, data, recipe=recipe, overrides=overrides, input_size=input_size)
    if existing and not replace:
        _refuse_smaller_reruns(plans, data, seeds, budget_seconds, existing, source)
    rows = []
    for plan in plans:
        setup = setup_device(plan.config.device, plan.config.precision, plan.config.channels_last)
        origin = origin or provenance(setup, command)  # one invocation, one record (its start time)
        say(_fit_to_budget(plan, data, setup, budget_seconds, len(seeds)))
        runs = []
        for seed in seeds:
            run = _train_seed(plan, data, setup, seed, budget_seconds, progress)
            runs.append(run)
            cut = " (stopped by the budget)" if run["stopped_by_budget"] else ""
            say(
                f"{plan.spec.label}@{plan.input_size} seed {seed}: test acc {run['test_acc']:.4f} after "
                f"{run['epochs']} epochs{cut}, {run['train_seconds']:.1f} s training, "
                f"{run['images_per_sec']:,.0f} images/s"
            )
        row = _row(plan, data, setup, runs, budget_seconds, origin)
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return rows
