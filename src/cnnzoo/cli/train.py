"""``cnnzoo train``: flags in, :mod:`cnnzoo.run` does the work, lines out."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys

from cnnzoo.base.devices import set_threads
from cnnzoo.base.errors import ConfigError
from cnnzoo.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    train_overrides,
)
from cnnzoo.models.registry import ModelSpec
from cnnzoo.run import Outcome, Run, Training, new_run, resume_run, start_training
from cnnzoo.run.progress import default_callbacks, final_summary, format_best, format_time_to_target
from cnnzoo.train.config import DEFAULT_MODEL, TrainConfig
from cnnzoo.train.distributed import timeout_from_env
from cnnzoo.train.history import patience_reached

__all__ = ["cmd_train"]


class _StopFlag:
    """SIGINT and SIGTERM handler: the first Ctrl-C (or SIGTERM, what docker and systemd send) asks fit to stop
    after the current step; a second one aborts. ``quiet`` (a torchrun rank other than 0): only raise the flag,
    say nothing. ``exit_status``: 130 after Ctrl-C, 143 after SIGTERM."""

    def __init__(self, quiet: bool = False) -> None:
        self.requested = False
        self.quiet = quiet
        self.signum = signal.SIGINT

    def __call__(self) -> bool:
        return self.requested

    @property
    def exit_status(self) -> int:
        return EXIT_TERMINATED if self.signum == signal.SIGTERM else EXIT_INTERRUPTED

    def handle(self, signum: int, frame: object) -> None:
        if self.requested and not self.quiet:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum
        if not self.quiet:
            what = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
            again = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
            print(
                f"\n{what}: finishing the current step and saving a checkpoint ({again} again to abort)",
                file=sys.stderr,
                flush=True,
            )

    def install(self) -> dict[int, object]:
        """Handle SIGINT and SIGTERM; the handlers that were there before."""
        return {sig: signal.signal(sig, self.handle) for sig in (signal.SIGINT, signal.SIGTERM)}


def _dist_timeout(args: argparse.Namespace):
    """``--dist-timeout`` (checked by :func:`_check_machine_flags`), else ``$CNNZOO_DIST_TIMEOUT``, else the
    default: read here once, and handed down to the process group as an argument."""
    import datetime

    return datetime.timedelta(seconds=args.dist_timeout) if args.dist_timeout is not None else timeout_from_env()


def _check_machine_flags(args: argparse.Namespace) -> None:
    """Flags that are not hyperparameters, checked before anything heavy happens."""
    if args.threads is not None and args.threads > 4096:
        raise ConfigError(f"--threads {args.threads}: more than 4096 threads: leave --threads out (the free cores)")
    timeout = args.dist_timeout
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= 7 * 24 * 3600):
        raise ConfigError(f"--dist-timeout {timeout}: give seconds above 0, at most a week (604800)")


def _aborted(training: Training, stop: _StopFlag) -> int:
    """The second Ctrl-C (or SIGTERM): say what is on disk, and how to go on."""

    if training.last is not None and training.last.exists():
        print(f"aborted; the last checkpoint is in {training.last}: resume with: cnnzoo train --resume "
              f"{training.directory}", file=sys.stderr)  # fmt: skip
    else:
        print("aborted before the first epoch finished; nothing was saved: start again with the same command",
              file=sys.stderr)  # fmt: skip
    return stop.exit_status


def _make_run(args: argparse.Namespace) -> Run:
    overrides = train_overrides(args)
    if not args.resume:
        return new_run(args.model or DEFAULT_MODEL, recipe=args.recipe or "fast", overrides=overrides,
                       data_root=args.data_root)  # fmt: skip
    if args.out or args.recipe:
        flag = "--out" if args.out else "--recipe"
        raise ConfigError(f"{flag} cannot change when resuming {args.resume}: start a new run instead")
    return resume_run(args.resume, overrides=overrides, model=args.model, data_root=args.data_root)


def cmd_train(args: argparse.Namespace) -> int:
    _check_machine_flags(args)
    set_threads(args.threads)
    run = _make_run(args)
    if args.print_config:
        print(json.dumps(run.config.to_dict(), indent=2))
        return 0
    command = ["cnnzoo", *sys.argv[1:]]
    training = start_training(run, out=args.out, command=command, dist_timeout=_dist_timeout(args))
    show = training.is_main and not args.quiet
    if show:
        _announce(training)
    stop = _StopFlag(quiet=not training.is_main)
    previous = stop.install()
    try:
        outcome = training.train(callbacks=default_callbacks(show), should_stop=stop)
    except KeyboardInterrupt:  # the second Ctrl-C or SIGTERM
        return _aborted(training, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if training.is_main:
        _conclude(training, outcome)
    return stop.exit_status if outcome.stopped else 0


def _tta_text(tta: str) -> str:
    """The settings line's note on test-time views (nothing without them)."""
    views = {"flip": "the image and its mirror", "flip+shift": "6 views: mirror and 1-pixel shifts"}
    return f", the last epoch's figures averaged over {views[tta]}" if tta in views else ""


def _optimizer_text(config: TrainConfig) -> str:
    if config.optimizer == "muon":
        return f"muon lr {config.muon_lr:g} for the conv filters, Nesterov lr {config.lr:g} for the rest"
    return f"{config.optimizer} lr {config.lr:g}"


def _announce(training: Training) -> None:
    run, config, ddp = training.run, training.run.config, training.ddp
    params = sum(p.numel() for p in run.model.parameters())
    what = f"resuming {training.directory} at epoch {run.resume['epoch'] + 1}" if run.resume else ""
    own = {k: v for k, v in config.model_kwargs.items() if k not in ("num_classes", "in_channels")}
    print(f"training {ModelSpec(config.model, own).label} ({params:,} parameters) on {training.setup.describe()}; "
          f"{what or f'run directory {training.directory}'}")  # fmt: skip
    print(
        f"recipe {config.recipe}: {config.epochs} epochs, batch {config.batch_size}, {_optimizer_text(config)}, "
        f"schedule {config.schedule}, input {config.resize}x{config.resize}, "
        f"augment {config.augment}{_tta_text(config.tta)}; {_split_text(run)}; img/s counts data time, not evaluation",
        flush=True,
    )
    for note in run.notes:
        print(note, flush=True)
    if run.init is not None:
        print(run.init.describe(), flush=True)
    if ddp is not None:
        print(
            f"data parallel: {ddp.world_size} processes ({ddp.backend}), global batch {config.batch_size} = "
            f"{config.batch_size // ddp.world_size} per process; rank 0 writes the run directory",
            flush=True,
        )


def _split_text(run: Run) -> str:
    data = run.data
    if not data.has_validation:
        return f"all {data.train_labels.numel():,} training images, no validation split"
    return f"{data.train_labels.numel():,} training + {data.val_labels.numel():,} validation images"


def _conclude(training: Training, outcome: Outcome) -> None:
    directory = outcome.directory
    if outcome.stopped:
        print(f"checkpoint saved: {training.last}\nresume with: cnnzoo train --resume {directory}", flush=True)
        return
    files = ", ".join(
        sorted(p.name if p.is_file() else f"{p.name}/" for p in directory.iterdir() if not p.is_symlink())
    )
    print(f"run directory: {directory} ({files})")
    best = format_best(outcome.history)
    if best is not None:
        print(best)
    print(final_summary(outcome.history, training.setup.label), flush=True)
    config = training.run.config
    if config.target_acc is not None:
        print(format_time_to_target(outcome.history, config.target_acc), flush=True)
    if patience_reached(outcome.history, config.patience):
        print(
            f"stopped early after epoch {outcome.history[-1]['epoch']} of {config.epochs}: {config.patience} "
            "epochs without a better validation accuracy",
            flush=True,
        )
