"""Training a :class:`Run` (made by :mod:`cnnzoo.run.setup`) where a user would: on its device, under torchrun
when launched so, with its run directory written as it goes and its report at the end.

:func:`start_training` does the set-up that must happen before anything runs on the device (determinism,
the TensorBoard extra, joining a torchrun process group, the run directory); :meth:`Training.train` then
trains, turns the engine's errors into messages that say what was kept, and writes the closing files
(confusion matrix, per-class table, report). A front end shows what it wants through callbacks and the
returned :class:`Outcome`; only :meth:`Run.fit` with ``progress`` prints (for the Python API and notebooks).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnzoo.base.devices import DeviceSetup, enable_determinism, setup_device
from cnnzoo.base.errors import ConfigError, FileWriteError, TrainingDivergedError
from cnnzoo.base.rundirs import RunLock, check_new_run_target, new_run_dir
from cnnzoo.data.dataset import ImageDataset
from cnnzoo.models.inspection import summary
from cnnzoo.run.directory import RunDirectory
from cnnzoo.run.environment import environment_info
from cnnzoo.run.live import LiveCurves
from cnnzoo.run.progress import default_callbacks, in_notebook
from cnnzoo.run.sources import InitReport
from cnnzoo.run.tensorboard import TensorBoardLogger, summary_writer_class
from cnnzoo.train.config import TrainConfig
from cnnzoo.train.distributed import Distributed, ParallelContext, from_env
from cnnzoo.train.loop import evaluate, fit, random_batch, training_step
from cnnzoo.train.state import Callback, TrainState

__all__ = ["Estimate", "Outcome", "Run", "Training", "format_duration", "start_training"]


@dataclass
class Run:
    """A run ready to train: its final config, its model (freshly initialised, or the checkpoint's
    weights), its data, and when resuming the checkpoint's training state and directory."""

    config: TrainConfig
    model: nn.Module
    data: ImageDataset
    resume: Mapping[str, Any] | None = None  # the checkpoint's "train" part (optimizer, schedule, RNG, history)
    directory: Path | None = None  # the run directory being resumed; None for a new run
    checkpoint: Path | None = None  # the checkpoint file the model came from
    init: InitReport | None = None  # what a new run took from --init-from's trained model
    notes: list[str] = field(default_factory=list)  # what a front end should tell its user first
    out: Path | None = None  # the run directory the last ``fit(out=...)`` wrote

    def estimate(self, *, steps: int = 5) -> Estimate:
        """How long :meth:`fit` should take on this machine now, timed on ``steps`` training steps of a copy of
        the model (the run itself is not touched); ``print`` it for one line."""
        return estimate(self, steps=steps)

    def fit(
        self,
        *,
        out: str | os.PathLike[str] | bool | None = None,
        progress: bool | None = None,
        callbacks: Sequence[Callback] = (),
        should_stop: Callable[[], bool] | None = None,
        setup: DeviceSetup | None = None,
        parallel: ParallelContext | None = None,
    ) -> list[dict[str, Any]]:
        """Train it with :func:`cnnzoo.fit` (from the checkpoint's exact step when resuming); the history.

        ``out``: also write a run directory, as ``cnnzoo train --out`` does (config, metrics, curves,
        checkpoints, report), which :func:`cnnzoo.load_model` and every command open: a new directory's path,
        or True for ``runs/<model>-<time>``; a resumed run writes into its own directory. The path is kept in
        :attr:`out`. Without ``out`` nothing is written.

        ``progress``: a progress bar and epoch lines (with live curves in Jupyter). By default shown in a
        notebook when no ``callbacks`` are given, and not elsewhere.
        """
        if progress is None:
            progress = not callbacks and in_notebook()
        if progress:
            callbacks = [*default_callbacks(), *callbacks]
        if out is None or out is False:
            return fit(
                self.model,
                self.data,
                self.config,
                resume=self.resume,
                callbacks=callbacks,
                should_stop=should_stop,
                setup=setup,
                parallel=parallel,
            )
        if setup is not None or parallel is not None:
            raise ConfigError("fit(out=...) sets its device up itself: leave setup and parallel out")
        training = start_training(self, out=None if out is True else _new_out(self, out))
        outcome = training.train(callbacks=callbacks, should_stop=should_stop)
        self.out = outcome.directory
        if progress and outcome.directory is not None:
            print(f"run directory: {outcome.directory} (cnnzoo.load_model({str(outcome.directory)!r}))")
        return outcome.history


@dataclass(frozen=True)
class Estimate:
    """How long :meth:`Run.fit` should take here: ``seconds`` in all, from ``images_per_sec`` timed on a few
    training steps of a copy of the model just now (on a busy machine it says so by being long)."""

    seconds: float
    images_per_sec: float
    epochs: int
    train_images: int
    eval_images: int
    steps_timed: int
    batch_size: int

    def __str__(self) -> str:
        return (
            f"estimated: about {format_duration(self.seconds)} ({self.epochs} epoch(s) of {self.train_images:,} "
            f"training and {self.eval_images:,} evaluation images at about {self.images_per_sec:,.0f} training "
            f"images/s, timed on {self.steps_timed} steps of {self.batch_size})"
        )


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"3 min 10 s"``, ``"1 h 05 min"``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


WARMUP_STEPS = 2  # the first steps of a model create its kernels: not timed
MIN_TIMED_SECONDS = 1.0  # then steps are timed for at least this long ...
MAX_TIMED_STEPS = 200  # ... or this many, whichever comes first
EPOCH_OVERHEAD = 0.3  # seconds an epoch costs beyond its steps (setting up its batches and evaluation, the files)


def estimate(run: Run, *, steps: int = 5) -> Estimate:
    """:meth:`Run.estimate`: at least ``steps`` training steps, and at least :data:`MIN_TIMED_SECONDS` of them
    (after :data:`WARMUP_STEPS`), of a copy of ``run.model`` on
    random input of the run's batch, side, device and precision; evaluation counted at a third of a training
    step per image (a forward pass of the three), and :data:`EPOCH_OVERHEAD` per epoch. Measured against the
    notebooks' cells on 2 idle cores: within about a third of what they took (benchmarks/notebooks.md)."""
    config, data = run.config, run.data
    setup = setup_device(config.device, config.precision, config.channels_last)
    model = setup.place(copy.deepcopy(run.model)).train()
    side = config.resize or model.default_input_size
    batch = min(config.batch_size, max(1, data.train_labels.numel()))
    x, y = random_batch(setup, batch, data.in_channels, side, data.num_classes)
    step = training_step(model, x, y, torch.optim.SGD(model.parameters(), lr=1e-9), setup)

    for _ in range(WARMUP_STEPS):
        step()
    setup.synchronize()
    start, timed = time.perf_counter(), 0
    # at least ``steps``, and at least MIN_TIMED_SECONDS of them (a small model's first steps are its slowest)
    while timed < steps or (time.perf_counter() - start < MIN_TIMED_SECONDS and timed < MAX_TIMED_STEPS):
        step()
        setup.synchronize()
        timed += 1
    rate = timed * batch / max(time.perf_counter() - start, 1e-9)
    done = int(run.resume["epoch"]) if run.resume else 0
    epochs = max(0, config.epochs - done)
    train = data.train_labels.numel()
    evaluated = data.test_labels.numel() + (data.val_labels.numel() if data.val_labels is not None else 0)
    seconds = epochs * ((train + evaluated / 3) / rate + EPOCH_OVERHEAD)
    return Estimate(seconds, rate, epochs, train, evaluated, timed, batch)


def _new_out(run: Run, out: str | os.PathLike[str]) -> Path | None:
    """``out`` for a new run; a resumed run writes where it was, and another place is refused."""
    if run.directory is None:
        return Path(out)
    if Path(out).resolve() != run.directory.resolve():
        raise ConfigError(
            f"out={str(out)!r}: this run resumes {run.directory}; leave out= out, or out={str(run.directory)!r}"
        )
    return None


@dataclass
class Outcome:
    """How a training ended: its history, whether it was stopped (its last.pt then holds the step it
    stopped at, and ``--resume`` continues from there), and the run directory (None on ranks other than 0)."""

    history: list[dict[str, Any]]
    stopped: bool
    directory: Path | None


class _State(Callback):
    """Keeps the engine's state, so the end of a run can see it (on every rank; it writes nothing)."""

    state: TrainState | None = None

    def on_train_start(self, state: TrainState) -> None:
        self.state = state


@dataclass
class Training:
    """A run placed on its device with its run directory, ready for :meth:`train`."""

    run: Run
    setup: DeviceSetup
    ddp: Distributed | None = None
    parallel: ParallelContext | None = None
    directory: Path | None = None  # rank 0 only
    recorder: RunDirectory | None = None
    callbacks: list[Callback] = field(default_factory=list)  # the run's own: its directory, TensorBoard
    lock: RunLock | None = None  # rank 0: held on the run directory from start_training to the end of train

    def release(self) -> None:
        """Let the run directory's lock go (:meth:`train` does at its end, whatever the outcome)."""
        if self.lock is not None:
            self.lock.release()

    @property
    def is_main(self) -> bool:
        """The process that writes files and may print (always, unless a torchrun rank other than 0)."""
        return self.ddp is None or self.ddp.is_main

    @property
    def last(self) -> Path | None:
        return self.recorder.last if self.recorder is not None else None

    def train(self, *, callbacks: Sequence[Callback] = (), should_stop: Callable[[], bool] | None = None) -> Outcome:
        """Train to the end (or until ``should_stop``), then write the run's closing files.

        Under torchrun ``should_stop`` is agreed between the ranks, so all stop after the same step;
        ``callbacks`` are used on rank 0 only.
        """
        try:
            return self._train(callbacks, should_stop)
        finally:
            self.release()

    def _train(self, callbacks: Sequence[Callback], should_stop: Callable[[], bool] | None) -> Outcome:
        if self.ddp is not None:
            should_stop = self.ddp.agreed_stop(should_stop or (lambda: False), self.setup.device)
        kept = _State()
        chain = [kept, *self.callbacks, *callbacks] if self.is_main else [kept]
        try:
            history = self.run.fit(
                progress=False, callbacks=chain, should_stop=should_stop, setup=self.setup, parallel=self.parallel
            )
        except TrainingDivergedError as exc:
            last = self.last
            saved = f"the last good checkpoint is {last}" if last is not None and last.exists() else "no epoch finished"
            raise TrainingDivergedError(f"{exc}; {saved}") from None
        except FileWriteError as exc:  # a full disk: the previous checkpoint is intact
            last = self.last
            then = f"resume with --resume {self.directory}" if last is not None and last.exists() else "start again"
            raise FileWriteError(f"{exc}, then {then}") from None
        finally:
            for cb in self.callbacks:
                cb.close()
        state = kept.state
        stopped = bool(state is not None and state.stopped)
        if self.recorder is not None and state is not None and not stopped:
            self._finish(state)
        if self.ddp is not None:
            self.ddp.finish()
        return Outcome(history, stopped, self.directory)

    def _finish(self, state: TrainState) -> None:
        model, config = self.run.model, self.run.config
        try:
            model_text = str(summary(model, config.resize))
        except Exception as exc:  # the report should not be lost to a summary failure after a long run
            model_text = f"(model summary unavailable: {exc})"
        if state.last_eval is None:  # resumed after the last epoch: evaluate the final model for the report
            state.last_eval = evaluate(model, self.run.data, config, setup=self.setup)
        self.recorder.finish(state, state.last_eval, model_text)


def start_training(
    run: Run,
    *,
    out: str | os.PathLike[str] | None = None,
    command: Sequence[str] | None = None,
    dist_timeout: datetime.timedelta | None = None,
) -> Training:
    """Set ``run`` up to train: device, torchrun process group (when launched by torchrun) and, on rank 0,
    the run directory (``run.directory`` when resuming, else ``out`` or a fresh ``runs/<model>-<time>``),
    locked (:class:`~cnnzoo.base.rundirs.RunLock`) until :meth:`Training.train` ends: a second process
    training or resuming the same directory is refused with one line naming this one.

    ``command`` is recorded in config.json and the report. ``dist_timeout``: under torchrun, how long a collective
    waits for a stalled rank (:func:`cnnzoo.train.distributed.from_env`).
    """
    config = run.config
    if config.deterministic:
        enable_determinism()  # before anything runs on the device (CUBLAS_WORKSPACE_CONFIG)
    if config.tensorboard:
        summary_writer_class()  # a missing extra is reported before anything is written
    ddp = from_env(
        timeout=dist_timeout
    )  # launched by torchrun: data parallel (cnnzoo.train.distributed); None when alone
    device = ddp.device_for(config) if ddp is not None else config.device
    setup = setup_device(device, config.precision, config.channels_last)
    training = Training(run, setup, ddp)
    if ddp is not None:
        ddp.start(setup.device)
        model = ddp.prepare_model(run.model, sync_bn=config.sync_bn, device=setup.device)
        training.run = dataclasses.replace(run, model=model)
        training.parallel = ddp.context(setup)
    if not training.is_main:
        return training
    directory = run.directory or new_run_dir(config.model, out)
    training.lock = _lock(directory, fresh=run.directory is None)
    training.directory = directory
    training.recorder = RunDirectory(
        directory,
        data=run.data,
        config=config,
        environment=environment_info(setup.describe()),
        command=list(command) if command is not None else None,
        input_size=config.resize,
    )
    training.callbacks = [training.recorder, LiveCurves(directory)]  # live.json: the epoch in progress
    if config.tensorboard:
        try:
            training.callbacks.append(TensorBoardLogger(directory / "tensorboard"))
        except BaseException:
            training.release()
            raise
    return training


def _lock(directory: Path, *, fresh: bool) -> RunLock:
    """The run directory's lock, held from here until the training ends; a new run's directory is checked
    again once locked (another process may have started a run there since it was first checked)."""
    lock = RunLock(directory).acquire()
    if fresh:
        try:
            check_new_run_target(directory, locked_by_us=True)
        except BaseException:
            lock.release()
            raise
    return lock
