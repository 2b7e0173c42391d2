"""``cnnzoo train``: flags in, :mod:`cnnzoo.run` does the work, lines out."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from typing import TYPE_CHECKING

from cnnzoo.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    add_batch_size,
    add_channels_last,
    add_input_size,
    add_precision,
    train_overrides,
)
from cnnzoo.config import AUGMENTS, DEFAULT_MODEL, INITS, OPTIMIZERS, RECIPES, SCHEDULES
from cnnzoo.errors import ConfigError

if TYPE_CHECKING:  # annotations only: the run layer (and torch) is imported by the commands that use it
    from cnnzoo.run import Outcome, Run, Training

__all__ = ["add_train"]


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on Fashion-MNIST and leave a run directory",
        description="Train MODEL with a recipe (fast: the best known set-up; d2l: the book's exact set-up); "
        "explicit flags override the recipe. Leaves runs/<model>-<time>/ (or --out) with config, metrics, "
        "curves, checkpoints and a report. Ctrl-C saves a resumable checkpoint.",
    )
    p.add_argument(
        "model",
        nargs="?",
        help="registered model name (see `cnnzoo models`), default lenet_bn; NAME:KWARG[=VALUE],... passes keyword "
        "arguments and NAME@SIDE sets the input side, e.g. resnet18:small_input (a 3x3 stem for 28x28 images)",
    )
    p.add_argument("--recipe", choices=sorted(RECIPES), help="hyperparameter set to start from (default fast)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<model>-<time>)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    _add_optimisation(p.add_argument_group("optimisation (default: the recipe's value)"))
    _add_data(p.add_argument_group("data"))
    _add_machine(p.add_argument_group("machine"))
    p.set_defaults(func=cmd_train)


def _add_optimisation(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--epochs", type=int, help="with --resume: the new total (a length-aware schedule is recomputed)")
    add_batch_size(g)
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--optimizer", choices=OPTIMIZERS)
    g.add_argument("--momentum", type=float, help="for --optimizer momentum (Nesterov)")
    g.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule, stepped per batch")
    g.add_argument("--warmup", dest="warmup_epochs", type=float, metavar="EPOCHS", help="linear warm-up")
    g.add_argument("--step-size", type=int, metavar="EPOCHS", help="--schedule step: decay interval")
    g.add_argument("--gamma", type=float, help="--schedule step: decay factor")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the global gradient norm (0: off)")
    g.add_argument("--init", choices=INITS, help="xavier: d2l's xavier_uniform_ init")
    g.add_argument("--init-from", metavar="RUN|WEIGHT", help="fine-tune: start from a trained model's parameters (a "
                   "run directory, checkpoint or weight name, e.g. lenet_bn.fashion_mnist); a new head for your "
                   "classes; a lower --lr often helps")  # fmt: skip


def _add_data(g: argparse._ArgumentGroup) -> None:
    add_input_size(g, "input side (default: the model's input size); --resize is the same flag")
    g.add_argument("--augment", choices=AUGMENTS)
    g.add_argument("--crop-padding", type=int, metavar="PX")
    g.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument(
        "--dataset",
        metavar="NAME",
        help="fashion-mnist (default), mnist, kmnist, cifar10, or folder:PATH for your own images in the "
        "ImageFolder layout (PATH/<class>/*.png, or PATH/train/<class>/ and PATH/test/<class>/); the model gets "
        "the dataset's channels and classes",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        help="folder:PATH without a test/ folder: share of each class held out for testing (default 0.1)",
    )
    g.add_argument(
        "--val-size",
        type=int,
        metavar="N",
        help="validation images held out of the training split, stratified, the same images whatever --seed; "
        "best.pt and --patience use them, never the test set (default: a tenth of the training images, at most "
        "5,000; the d2l recipe: 0, the book's set-up; 0: none)",
    )
    g.add_argument("--data-root", metavar="DIR", help="directory with the dataset's files (default: the user cache)")


def _add_machine(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--device", help="auto (cuda, mps, cpu), cpu, cuda, cuda:N or mps")
    add_precision(g)
    add_channels_last(g)
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--seed", type=int)
    g.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic kernels, so the seed reproduces a CUDA run too; costs speed on CUDA (slower "
        "convolutions, no cuDNN autotuning), little on CPU, which is reproducible already (docs/reliability.md)",
    )
    g.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: the cores other programs leave free)")
    g.add_argument(
        "--dist-timeout",
        type=float,
        metavar="SECONDS",
        help="under torchrun: how long a rank waits for a stalled one before the job ends (default 1800)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    g.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also log scalars for TensorBoard to RUN_DIR/tensorboard (pip install 'cnnzoo[tensorboard]'); "
        "view with: tensorboard --logdir runs",
    )
    g.add_argument(
        "--target-acc",
        type=float,
        metavar="ACC",
        help="time to accuracy on the test set, as DAWNBench and airbench measure it: stop after the first epoch "
        "whose test accuracy reaches ACC (e.g. 0.91) and report the training + evaluation time it took (a "
        "measurement, not a model choice); with --resume, a higher ACC trains a run that reached its target on",
    )
    g.add_argument(
        "--patience",
        type=int,
        metavar="EPOCHS",
        help="early stopping: end the run after EPOCHS epochs without a better validation accuracy",
    )
    g.add_argument(
        "--sync-bn",
        action="store_true",
        default=None,
        help="under torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm; docs/scaling.md)",
    )


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

    from cnnzoo.distributed import timeout_from_env

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
    from cnnzoo.run import new_run, resume_run

    overrides = train_overrides(args)
    if not args.resume:
        return new_run(args.model or DEFAULT_MODEL, recipe=args.recipe or "fast", overrides=overrides,
                       data_root=args.data_root)  # fmt: skip
    if args.out or args.recipe:
        flag = "--out" if args.out else "--recipe"
        raise ConfigError(f"{flag} cannot change when resuming {args.resume}: start a new run instead")
    return resume_run(args.resume, overrides=overrides, model=args.model, data_root=args.data_root)


def cmd_train(args: argparse.Namespace) -> int:
    from cnnzoo.devices import set_threads
    from cnnzoo.progress import default_callbacks
    from cnnzoo.run import start_training

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


def _announce(training: Training) -> None:

    run, config, ddp = training.run, training.run.config, training.ddp
    params = sum(p.numel() for p in run.model.parameters())
    what = f"resuming {training.directory} at epoch {run.resume['epoch'] + 1}" if run.resume else ""
    print(f"training {config.model} ({params:,} parameters) on {training.setup.describe()}; "
          f"{what or f'run directory {training.directory}'}")  # fmt: skip
    print(
        f"recipe {config.recipe}: {config.epochs} epochs, batch {config.batch_size}, {config.optimizer} "
        f"lr {config.lr:g}, schedule {config.schedule}, input {config.resize}x{config.resize}, "
        f"augment {config.augment}; {_split_text(run)}; img/s counts data time, not evaluation",
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
    from cnnzoo.engine import patience_reached
    from cnnzoo.progress import final_summary, format_best, format_time_to_target

    directory = outcome.directory
    if outcome.stopped:
        print(f"checkpoint saved: {training.last}\nresume with: cnnzoo train --resume {directory}", flush=True)
        return
    files = ", ".join(sorted(p.name for p in directory.iterdir() if p.is_file()))
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
